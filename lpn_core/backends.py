"""Inference backends behind one call: normalised crops (N, 3, 256, 192) -> heatmaps (N, 17, 64, 48).

The pipeline never branches on which backend it holds (STYLE §9). ONNX Runtime is the CPU default:
it runs LPN ~1.7x faster than PyTorch eager on these machines (ANCHORS §5.2).
"""
from __future__ import annotations

import ctypes
import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, Protocol

import numpy as np
import torch

from .errors import LpnError, OutputError
from .model import LPN

BACKENDS: Final = ("onnx", "torch")
ONNX_OPSET: Final = 17


class Backend(Protocol):
    """Crops (N, 3, H, W) float32 -> raw heatmaps (N, K, H/4, W/4) float32."""

    name: str

    def __call__(self, crops: np.ndarray) -> np.ndarray: ...


def cpu_threads() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Undo a change to torch's process-wide thread count made inside the block. Ultralytics sets it to
    cores - 1 (1 on a 2-core machine) when it sets up a predictor on the CPU (utils/torch_utils.select_device:
    at the first predict, or at the first ``.names`` of an exported model), for the YOLO model and for every
    torch model in the process after it."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


M_ARENA_MAX: Final = -8  # glibc mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process (entry points call it once, early).

    glibc gives threads that allocate their own heap arena, up to 8 per core; model builds on short-lived
    loader threads and ONNX Runtime's thread pools then leave freed memory spread over arenas that never
    shrink together, and a long-running window's RSS drifts upward with each model switch
    (docs/RELIABILITY.md, "Soak"). Two arenas keep it flat.
    Returns False where this is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


class TorchBackend:
    """PyTorch eager, inference mode; CPU or CUDA."""

    name = "torch"

    def __init__(self, model: LPN, device: str = "cpu") -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise LpnError(f"device '{device}' requested but CUDA is not available here: use --device cpu")
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(crops).to(self.device)).float().cpu().numpy()


def export_onnx(model: LPN, path: str | os.PathLike | io.BytesIO, opset: int = ONNX_OPSET,
                input_size: tuple[int, int] | None = None) -> None:
    """Export ``model`` to ONNX with a dynamic batch axis (input ``crops``, output ``heatmaps``) at
    ``input_size`` (H, W), by default the architecture's 256x192."""
    model = model.eval().cpu()
    dummy = torch.zeros(1, 3, *(input_size or model.spec.input_size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (dummy,), path, input_names=["crops"], output_names=["heatmaps"],
                          dynamic_axes={"crops": {0: "batch"}, "heatmaps": {0: "batch"}},
                          opset_version=opset, dynamo=False)


class OrtBackend:
    """ONNX Runtime on the CPU: all graph optimisations, one intra-op thread per core."""

    def __init__(self, model_or_path: LPN | str | os.PathLike, threads: int | None = None,
                 spinning: bool = True, input_size: tuple[int, int] | None = None, name: str = "onnx") -> None:
        import onnxruntime as ort

        self.name = name  # "onnx" (fp32) or "onnx-int8"

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        if not spinning:  # idle workers stop burning cores that capture/GUI threads need
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if isinstance(model_or_path, LPN):
            buffer = io.BytesIO()
            export_onnx(model_or_path, buffer, input_size=input_size)
            source: bytes | str = buffer.getvalue()
        else:
            source = str(model_or_path)
            if not Path(source).is_file():
                raise LpnError(f"ONNX file '{source}' not found: export one with `python -m lpn_core.export`")
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise LpnError(f"cannot load ONNX model '{model_or_path}': {str(exc).splitlines()[0]}") from exc
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(crops, np.float32)})[0]


def save_onnx(model: LPN, path: str | os.PathLike, input_size: tuple[int, int] | None = None) -> Path:
    """Export to a file at ``input_size`` (H, W), with a one-line error if the folder cannot be written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, str(path), input_size=input_size)
    except OSError as exc:
        raise OutputError(f"cannot write '{path}': {exc.strerror or exc}; choose a writable folder") from exc
    return path
