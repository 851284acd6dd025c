"""PoseEstimator: a BGR image and N person boxes -> N x 17 keypoints in image pixels, in one batch."""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from . import codec, quantize, transforms
from .backends import BACKENDS, Backend, OrtBackend, TorchBackend, save_onnx
from .errors import LpnError, OutputError
from .model import LPN
from .weights import WeightsInfo, cache_dir, describe_weights, model_with_weights, resolve_weights

AUTO_INT8_MAX_RATIO = 0.9  # auto runs INT8 only when it takes < 90 % of fp32's time here


@dataclass(slots=True)
class EstimateTimes:
    """Milliseconds spent in the last call, per stage."""

    crop: float = 0.0
    infer: float = 0.0
    decode: float = 0.0


def small_crop_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """The largest crop (H, W) of at most half ``input_size``, of the same aspect, with both sides multiples of
    16: LPN is fully convolutional, but its backbone downsamples by 16, so other sides break the heatmap grid
    (96x72 gives 24x20 heatmaps, not 24x18). 128x96 -> 64x48, 256x192 -> 128x96, 192x144 -> 64x48."""
    height, width = input_size
    divisor = math.gcd(height, width)
    unit_h, unit_w = 16 * height // divisor, 16 * width // divisor  # the smallest such crop of this aspect
    times = height // 2 // unit_h
    if times == 0:
        raise LpnError(f"no smaller crop for {height}x{width} keeps both sides multiples of 16: "
                       f"turn small crops off (small_crop_px 0)")
    return times * unit_h, times * unit_w


@dataclass(slots=True)
class PoseEstimator:
    """Top-down LPN on any backend: crops, one backend call (two with flip test), decode, back-project."""

    backend: Backend
    model_name: str = "lpn50"
    flip_test: bool = False
    untrained: bool = False
    input_size: tuple[int, int] = (256, 192)  # (H, W) of the crops, as everywhere in lpn_core
    weights_label: str = ""  # "official", "project-trained, AP 0.xx", "file x.pth", "UNTRAINED"
    precision: str = "fp32"  # what runs: fp32 | int8
    precision_note: str = ""  # why, for the status bar: "INT8, 2.4x fp32 here", "fp32: INT8 not faster here"
    flip_shift: float = 1.0  # flip-test shift in heatmap px: 1 (paper) or 0.75 for unbiased targets (codec)
    times: EstimateTimes = field(default_factory=EstimateTimes)
    small_backend: Backend | None = None  # the same weights at ``small_crop_size(input_size)``, for small people

    @property
    def small_size(self) -> tuple[int, int]:
        """(H, W) of the small crops: ``small_crop_size(input_size)``."""
        return small_crop_size(self.input_size)

    def __call__(self, image: np.ndarray, boxes_xyxy: np.ndarray, small_max_px: float = 0.0) -> np.ndarray:
        """image (H, W, 3) uint8 BGR, boxes (N, 4) -> keypoints (N, 17, 3): x, y px, score. People whose
        padded crop is at most ``small_max_px`` frame px tall run at ``small_size`` (needs ``small_backend``)."""
        centers, sizes = transforms.box_to_center_size(boxes_xyxy)
        return self.estimate(image, centers, sizes, small_max_px)

    def estimate(self, image: np.ndarray, centers: np.ndarray, sizes: np.ndarray,
                 small_max_px: float = 0.0) -> np.ndarray:
        """Like ``__call__`` but from centres (N, 2) and padded sizes (N, 2) px (SimpleBaseline's box rule:
        aspect 3:4, x1.25; ``_box2cs`` in https://github.com/microsoft/human-pose-estimation.pytorch). One backend
        call per crop size: all crops of a size go in one batch."""
        self.times = EstimateTimes()
        keypoints = np.zeros((len(centers), 17, 3), np.float32)
        small = sizes[:, 1] <= small_max_px if self.small_backend is not None else np.zeros(len(centers), bool)
        if (~small).any():
            keypoints[~small] = self._estimate(image, centers[~small], sizes[~small], self.input_size, self.backend)
        if small.any():  # small_size only when needed: some input sizes have none
            keypoints[small] = self._estimate(image, centers[small], sizes[small], self.small_size, self.small_backend)
        return keypoints

    def _estimate(self, image: np.ndarray, centers: np.ndarray, sizes: np.ndarray, input_size: tuple[int, int],
                  backend: Backend) -> np.ndarray:
        """Crop, one batched backend call, decode, back to frame px; adds its stage times to ``times``."""
        t0 = time.perf_counter()
        affines = transforms.crop_affines(centers, sizes, 0.0, input_size)
        crops = transforms.normalize(transforms.warp_crops(image, affines, input_size))
        t1 = time.perf_counter()
        heatmaps = self.heatmaps(crops, backend)
        t2 = time.perf_counter()
        coords, scores = codec.decode(heatmaps)
        points = transforms.heatmap_to_frame(coords, affines, stride=input_size[1] / heatmaps.shape[3])
        keypoints = np.concatenate([points, scores[..., None]], axis=2).astype(np.float32)
        t3 = time.perf_counter()
        self.times.crop += (t1 - t0) * 1e3
        self.times.infer += (t2 - t1) * 1e3
        self.times.decode += (t3 - t2) * 1e3
        return keypoints

    def heatmaps(self, crops: np.ndarray, backend: Backend | None = None) -> np.ndarray:
        """Raw heatmaps (N, 17, H/4, W/4) for normalised crops (N, 3, H, W); flip-merged when ``flip_test``."""
        backend = backend or self.backend
        if not self.flip_test:
            return backend(crops)
        both = backend(np.concatenate([crops, crops[..., ::-1]], axis=0))
        return codec.flip_merge(both[: len(crops)], both[len(crops):], shift=self.flip_shift)


def build_estimator(model: str = "lpn50", weights: str | os.PathLike | None = None, backend: str = "onnx",
                    device: str = "cpu", flip_test: bool = False, threads: int | None = None,
                    download: bool = True, spinning: bool = False, precision: str = "auto",
                    small_crops: bool = False) -> PoseEstimator:
    """Resolve weights (see ``weights.resolve_weights``), load them strictly, wrap in a backend.

    ``precision``: fp32, int8 (ONNX Runtime static INT8, ``quantize``) or auto (INT8 where its AP is
    recorded within 0.01 of fp32 and it measures faster on this CPU at load, else fp32).
    ``spinning``: ONNX Runtime workers busy-wait between calls; off by default, because spinning LPN workers
    starve the detector and every other thread of a small CPU (2.6x slower pipeline, docs/PERFORMANCE.md).
    ``weights='untrained'`` keeps the paper's random init: for tests and timing, never for results.
    ``small_crops``: also build ``small_backend`` (``small_crop_size`` of the input size, same precision) for small people.
    """
    if backend not in BACKENDS:
        raise LpnError(f"unknown backend '{backend}': choose one of {', '.join(BACKENDS)}")
    if precision not in quantize.PRECISIONS:
        raise LpnError(f"unknown precision '{precision}': choose one of {', '.join(quantize.PRECISIONS)}")
    if precision == "int8" and backend != "onnx":
        raise LpnError("--precision int8 runs on ONNX Runtime: use --backend onnx")
    path = resolve_weights(model, weights, download=download)
    info = describe_weights(model, path)
    net = model_with_weights(model, path)
    note = ""
    if backend == "torch":
        runner: Backend = TorchBackend(net, device)
    else:
        if device != "cpu":
            raise LpnError("the onnx backend runs on the CPU here: use --backend torch for --device cuda")
        runner, note = onnx_runner(net, model, info, threads, spinning, precision)
    estimator = PoseEstimator(runner, model_name=model, flip_test=flip_test, untrained=path is None,
                              input_size=info.input_size, weights_label=info.label,
                              precision=quantize.BACKEND_PRECISION[runner.name], precision_note=note,
                              flip_shift=info.flip_shift)
    if small_crops:
        estimator.small_backend = small_runner(net, model, info, runner, device, threads, spinning)
    return estimator


def small_runner(net: LPN, model: str, info: WeightsInfo, runner: Backend, device: str, threads: int | None,
                 spinning: bool) -> Backend:
    """The backend of ``runner``'s kind and precision at ``small_crop_size`` of the input size."""
    if runner.name == "torch":
        return runner  # eager PyTorch takes any size
    small = dataclasses.replace(info, input_size=small_crop_size(info.input_size))
    if runner.name == "onnx-int8":
        return int8_backend(net, model, small, threads, spinning)
    return ort_backend(net, model, small.path, small.input_size, threads, spinning)


def onnx_runner(net: LPN, model: str, info: WeightsInfo, threads: int | None, spinning: bool,
                precision: str) -> tuple[OrtBackend, str]:
    """The fp32 or INT8 ONNX Runtime backend ``precision`` asks for, and a note saying why."""
    fp32 = ort_backend(net, model, info.path, info.input_size, threads, spinning)
    if precision == "fp32":
        return fp32, "fp32"
    if precision == "auto" and (info.int8_ap_drop is None or info.int8_ap_drop > quantize.MAX_AP_DROP):
        return fp32, "fp32: INT8 accuracy not measured for these weights (--precision int8 to try it)"
    int8 = int8_backend(net, model, info, threads, spinning)
    if precision == "int8":
        return int8, "INT8"
    ratio = quantize.speed_ratio(fp32, int8, quantize.calibration_crops(info.input_size, limit=1))
    if ratio < AUTO_INT8_MAX_RATIO:
        return int8, f"INT8, {1 / ratio:.1f}x fp32 here, AP {-info.int8_ap_drop:+.3f}"
    return fp32, f"fp32: INT8 not faster on this CPU ({ratio:.2f}x the time)"


def int8_backend(net: LPN, model: str, info: WeightsInfo, threads: int | None, spinning: bool) -> OrtBackend:
    """ONNX Runtime on the INT8 file of the cached fp32 export (quantized on first use); for untrained
    weights, or with no writable cache, quantized in a temporary folder."""
    fp32_file = cached_onnx(net, model, info.path, info.input_size) if info.path is not None else None
    if fp32_file is not None:
        try:
            return OrtBackend(quantize.cached_int8(fp32_file, info.input_size), threads=threads, spinning=spinning,
                              name="onnx-int8")
        except (OSError, LpnError):
            quantize.int8_path(fp32_file).unlink(missing_ok=True)  # damaged or unwritable: do it in memory
    with tempfile.TemporaryDirectory() as tmp:
        fp32_tmp = save_onnx(net, Path(tmp) / "fp32.onnx", info.input_size)
        int8_tmp = quantize.quantize_onnx(fp32_tmp, Path(tmp) / "int8.onnx", quantize.calibration_crops(info.input_size))
        return OrtBackend(int8_tmp, threads=threads, spinning=spinning, name="onnx-int8")


def ort_backend(net: LPN, model: str, weights_path: Path | None, input_size: tuple[int, int],
                threads: int | None, spinning: bool) -> OrtBackend:
    """ONNX Runtime on the cached export of a checkpoint (in-memory export for untrained weights). A cached
    file ONNX Runtime cannot load (corrupt, cut short) is deleted and exported again, once, with a note."""
    def load(source: LPN | Path) -> OrtBackend:
        return OrtBackend(source, threads=threads, spinning=spinning, input_size=input_size)

    onnx_file = cached_onnx(net, model, weights_path, input_size) if weights_path is not None else None
    if onnx_file is None:
        return load(net)
    try:
        return load(onnx_file)
    except LpnError:
        onnx_file.unlink(missing_ok=True)
    print(f"note: the cached ONNX export '{onnx_file}' was damaged; exported it again", file=sys.stderr)
    return load(cached_onnx(net, model, weights_path, input_size) or net)


def cached_onnx(net: LPN, model: str, weights_path: Path, input_size: tuple[int, int] | None = None) -> Path | None:
    """ONNX export of a checkpoint, made once and kept in ``cache_dir()/onnx`` keyed by the file's
    sha256, so switching models does not re-export (seconds per switch). None if the cache is not
    writable: the caller then exports in memory."""
    digest = hashlib.sha256(Path(weights_path).read_bytes()).hexdigest()[:16]
    h, w = input_size or net.spec.input_size
    target = cache_dir() / "onnx" / f"{model}-{digest}-{h}x{w}.onnx"
    if target.is_file():
        return target
    partial = target.with_suffix(f".{os.getpid()}.part")
    try:
        save_onnx(net, partial, input_size)
        partial.replace(target)
    except (OutputError, OSError):
        partial.unlink(missing_ok=True)
        return None
    return target


class ModelSettings(Protocol):
    """The fields of ``lpn_core.pipeline.PipelineSettings`` that choose the pose model."""

    model: str
    weights: str | None
    backend: str
    device: str
    flip_test: bool
    threads: int | None
    precision: str
    small_crop_px: float


def estimator_from_settings(settings: ModelSettings, spinning: bool = False) -> PoseEstimator:
    """``build_estimator`` for the model a PipelineSettings describes (the CLI, the window and the pipeline
    all build it this way)."""
    return build_estimator(settings.model, settings.weights, settings.backend, settings.device,
                           flip_test=settings.flip_test, threads=settings.threads, spinning=spinning,
                           precision=settings.precision, small_crops=settings.small_crop_px > 0)
