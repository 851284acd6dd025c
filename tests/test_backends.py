"""ONNX Runtime and PyTorch give the same heatmaps; the export has a dynamic batch axis."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from lpn_core import LpnError, create_model
from lpn_core.backends import OrtBackend, TorchBackend, cpu_threads, save_onnx


@pytest.fixture(scope="module")
def lpn50_pair() -> tuple[TorchBackend, OrtBackend]:
    model = create_model("lpn50", init=False)  # PyTorch default init: heatmaps of order 1, a harder check
    return TorchBackend(model), OrtBackend(model)


@pytest.mark.parametrize("batch", [1, 5])
def test_ort_and_torch_heatmaps_agree(lpn50_pair: tuple[TorchBackend, OrtBackend], batch: int) -> None:
    torch_backend, ort_backend = lpn50_pair
    crops = np.random.default_rng(batch).normal(size=(batch, 3, 256, 192)).astype(np.float32)
    expected, got = torch_backend(crops), ort_backend(crops)
    assert got.shape == expected.shape == (batch, 17, 64, 48)
    assert np.abs(got - expected).max() < 1e-4


def test_ort_session_uses_all_optimisations_and_every_core(lpn50_pair: tuple[TorchBackend, OrtBackend]) -> None:
    options = lpn50_pair[1].session.get_session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.intra_op_num_threads == cpu_threads()


def test_exported_file_has_a_dynamic_batch_axis(tmp_path) -> None:
    path = save_onnx(create_model("lpn50", init=False), tmp_path / "sub" / "lpn50.onnx")
    graph = onnx.load(str(path)).graph
    assert graph.input[0].name == "crops" and graph.output[0].name == "heatmaps"
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    out = OrtBackend(path)(np.zeros((3, 3, 256, 192), np.float32))
    assert out.shape == (3, 17, 64, 48)


def test_missing_or_corrupt_onnx_file_is_a_one_line_error(tmp_path) -> None:
    with pytest.raises(LpnError, match="not found"):
        OrtBackend(tmp_path / "absent.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(LpnError, match="cannot load ONNX model") as info:
        OrtBackend(bad)
    assert "\n" not in str(info.value)
