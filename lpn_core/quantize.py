"""INT8 LPN: ONNX Runtime static quantization (QDQ, per-channel int8 weights, uint8 activations).

Calibrated on the bundled person crops in ``assets/calibration/`` (CC0 photos, ``python -m
train.calibration_set``), never on the validation set. The INT8 file is made once from the cached fp32
export (a few seconds) and kept beside it. ``--precision auto`` runs INT8 only where both hold: the
weights' INT8 AP is recorded within ``MAX_AP_DROP`` of their fp32 AP (the bundled manifest's ``ap_int8``),
and INT8 measures faster than fp32 on this CPU, timed at load (``speed_ratio``).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from . import transforms
from .assets import asset_path
from .errors import WeightsError

PRECISIONS: Final = ("auto", "fp32", "int8")
MAX_AP_DROP: Final = 0.01  # auto picks INT8 only when it costs at most this much AP on coco_val2017
CALIBRATION_DIR: Final = asset_path("calibration")
CROP_SIZE: Final = (256, 192)  # (H, W) of the stored crops; resized to the weights' input size
SOURCES: Final = "SOURCES.tsv"
VNNI_FLAGS: Final = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
BACKEND_PRECISION: Final = {"onnx": "fp32", "onnx-int8": "int8", "torch": "fp32"}  # Backend.name -> arithmetic


def calibration_crops(input_size: tuple[int, int], folder: Path | None = None, limit: int | None = None) -> np.ndarray:
    """Normalised crops (N, 3, H, W) for ``input_size`` (H, W) from the bundled calibration JPEGs (the
    first ``limit`` of them)."""
    folder = folder or CALIBRATION_DIR
    files = sorted(Path(folder).glob("*.jpg"))[:limit]
    images = [image for image in (cv2.imread(str(f), cv2.IMREAD_COLOR) for f in files) if image is not None]
    if not images:
        raise WeightsError(f"no INT8 calibration crops in '{folder}': reinstall LPN Pose (in a checkout: "
                           f"git checkout -- {folder}) or use --precision fp32")
    height, width = input_size
    resized = [cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) for image in images]
    return transforms.normalize(np.stack(resized))


class _Batches:
    """onnxruntime CalibrationDataReader over fixed crops."""

    def __init__(self, input_name: str, crops: np.ndarray, batch: int) -> None:
        self._feeds = iter([{input_name: crops[i:i + batch]} for i in range(0, len(crops), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantize_onnx(fp32_path: Path, out_path: Path, crops: np.ndarray, batch: int = 8) -> Path:
    """Static INT8 (QDQ, per-channel weights, MinMax calibration on ``crops``) of an fp32 ONNX file,
    written atomically to ``out_path``."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import onnx

    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    partial = out_path.with_name(f"{out_path.stem}.{os.getpid()}.part.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        try:
            quantize_static(str(prepared), str(partial), _Batches(input_name, crops, batch),
                            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
            partial.replace(out_path)
        finally:
            partial.unlink(missing_ok=True)
    return out_path


def int8_path(fp32_path: Path) -> Path:
    """Where the INT8 file of a cached fp32 export lives (beside it)."""
    return fp32_path.with_name(f"{fp32_path.stem}-int8.onnx")


def cached_int8(fp32_path: Path, input_size: tuple[int, int]) -> Path:
    """The INT8 file of ``fp32_path``, quantized now if it is not there yet."""
    target = int8_path(fp32_path)
    if not target.is_file():
        quantize_onnx(fp32_path, target, calibration_crops(input_size))
    return target


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as handle:
            line = next((l for l in handle if l.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.split(":", 1)[-1].split())


def has_vnni() -> bool:
    """True where the CPU has 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX)."""
    return bool(cpu_flags() & VNNI_FLAGS)


def median_ms(run, feed: np.ndarray, calls: int) -> float:
    """Median wall time (ms) of ``calls`` calls of ``run(feed)``."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run(feed)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def speed_ratio(fp32, int8, crop: np.ndarray, rounds: int = 4, calls: int = 3) -> float:
    """INT8 time / fp32 time on one crop, timed interleaved in ``rounds`` after one warm-up call each
    (so load on a shared machine hits both alike): < 1 means INT8 is faster here."""
    fp32(crop), int8(crop)
    ratios = [median_ms(int8, crop, calls) / median_ms(fp32, crop, calls) for _ in range(rounds)]
    return statistics.median(ratios)
