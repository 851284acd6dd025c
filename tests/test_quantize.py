"""INT8 LPN (lpn_core/quantize.py): the bundled calibration crops, a QDQ per-channel file whose heatmaps
agree with fp32 on real crops, ``--precision auto|fp32|int8`` and the reasons auto gives, the recorded
INT8 AP of every bundled file, and the window's Precision dropdown."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from lpn_core import codec, quantize
from lpn_core.backends import OrtBackend, save_onnx
from lpn_core.errors import LpnError, WeightsError
from lpn_core.estimator import build_estimator
from lpn_core.model import create_model
from lpn_core.weights import BUNDLED_DIR, MANIFEST, bundled_weights, load_weights


@pytest.fixture(scope="module")
def lpn50_files(tmp_path_factory):
    """The bundled LPN-50 as fp32 ONNX and its INT8 quantization (128x96)."""
    entry = bundled_weights("lpn50")
    assert entry is not None, f"bundled LPN-50 missing: expected {BUNDLED_DIR / MANIFEST}"
    net = load_weights(create_model("lpn50", init=False), entry.path, "lpn50")
    folder = tmp_path_factory.mktemp("int8")
    fp32 = save_onnx(net, folder / "lpn50.onnx", entry.input_size)
    return fp32, quantize.cached_int8(fp32, entry.input_size), entry.input_size


def test_calibration_crops_are_real_normalised_person_crops() -> None:
    crops = quantize.calibration_crops((128, 96))
    assert crops.shape == (64, 3, 128, 96) and crops.dtype == np.float32
    assert -2.2 < crops.min() < -1.0 and 1.5 < crops.max() < 2.7  # ImageNet-normalised 0-255 pixels
    sources = (quantize.CALIBRATION_DIR / quantize.SOURCES).read_text().splitlines()[1:]
    assert len(sources) == 64 and all(row.endswith("\tCC0-1.0") for row in sources)


def test_missing_calibration_crops_are_one_line(tmp_path) -> None:
    with pytest.raises(WeightsError, match=r"no INT8 calibration crops in .*--precision fp32") as err:
        quantize.calibration_crops((128, 96), tmp_path)
    assert "\n" not in str(err.value)


def test_int8_file_is_qdq_per_channel(lpn50_files) -> None:
    _, int8, _ = lpn50_files
    graph = onnx.load(str(int8)).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    per_channel = [n for n in graph.node if n.op_type == "DequantizeLinear"
                   and any(a.name == "axis" for a in n.attribute)]
    assert per_channel, "weights are not quantized per output channel"


def test_int8_joints_agree_with_fp32_on_real_crops(lpn50_files) -> None:
    fp32, int8, size = lpn50_files
    crops = quantize.calibration_crops(size)
    ref_heatmaps = OrtBackend(fp32)(crops)
    ref_xy, ref_score = codec.decode(ref_heatmaps)
    got_xy, _ = codec.decode(OrtBackend(int8)(crops))
    confident = ref_score > 0.3
    per_24_wide = 24 / ref_heatmaps.shape[3]  # in pixels of 32x24 maps (1/24 of the crop width) at any crop size
    distance = np.linalg.norm(got_xy - ref_xy, axis=2)[confident] * per_24_wide
    assert confident.sum() > 200
    assert np.median(distance) < 0.5 and np.mean(distance < 2.0) > 0.9, (np.median(distance), np.mean(distance < 2))


def test_every_bundled_file_records_int8_ap_within_the_auto_limit() -> None:
    for model, entry in json.loads((BUNDLED_DIR / MANIFEST).read_text()).items():
        assert "ap_int8" in entry, f"{model}: run `python -m train.ship --model {model} --int8 --val DIR`"
        assert entry["ap"] - entry["ap_int8"] <= quantize.MAX_AP_DROP, model


def test_precision_fp32_and_int8_run_what_they_say() -> None:
    fp32 = build_estimator("lpn50", precision="fp32", download=False)
    int8 = build_estimator("lpn50", precision="int8", download=False)
    assert (fp32.precision, fp32.backend.name) == ("fp32", "onnx")
    assert (int8.precision, int8.backend.name) == ("int8", "onnx-int8")
    image = np.zeros((240, 320, 3), np.uint8)
    assert int8(image, np.array([[100, 40, 180, 230]], np.float32)).shape == (1, 17, 3)


@pytest.mark.parametrize("ratio, expected, note", [(0.4, "int8", "2.5x fp32 here"),
                                                   (1.3, "fp32", "INT8 not faster on this CPU")])
def test_auto_takes_int8_only_where_it_measures_faster(monkeypatch, ratio, expected, note) -> None:
    monkeypatch.setattr(quantize, "speed_ratio", lambda *a, **k: ratio)
    est = build_estimator("lpn50", precision="auto", download=False)
    assert est.precision == expected and note in est.precision_note


def test_auto_keeps_fp32_where_int8_accuracy_is_unknown() -> None:
    est = build_estimator("lpn50", "untrained", precision="auto")
    assert est.precision == "fp32" and "not measured" in est.precision_note


def test_auto_measures_both_on_this_cpu() -> None:
    est = build_estimator("lpn50", precision="auto", download=False)
    assert est.precision in ("int8", "fp32") and "x" in est.precision_note  # a ratio measured just now


def test_precision_errors_are_one_line() -> None:
    with pytest.raises(LpnError, match="unknown precision 'int4'"):
        build_estimator("lpn50", "untrained", precision="int4")
    with pytest.raises(LpnError, match="use --backend onnx"):
        build_estimator("lpn50", "untrained", backend="torch", precision="int8")


def test_a_damaged_cached_int8_file_is_replaced(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LPN_POSE_CACHE", str(tmp_path))
    first = build_estimator("lpn50", precision="int8", download=False)
    cached = next((tmp_path / "onnx").glob("*-int8.onnx"))
    cached.write_bytes(b"not an onnx file")
    again = build_estimator("lpn50", precision="int8", download=False)
    assert again.precision == "int8" and first.precision == "int8"
    assert not cached.exists() or cached.read_bytes() != b"not an onnx file"


def test_untrained_int8_quantizes_in_memory_for_timing() -> None:
    est = build_estimator("lpn50", "untrained", precision="int8")
    assert est.backend.name == "onnx-int8" and est.untrained

