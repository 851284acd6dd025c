"""YOLOX person detector on ONNX Runtime (the bundled default: ``assets/detectors/yolox_nano_416x416.onnx``).

The ONNX file is a raw YOLOX head: input ``1x3xSxS`` float32 BGR 0-255 (not normalised), the frame
letterboxed into the top-left corner and padded with 114; output ``[1, A, 85]`` = per anchor point
(dx, dy, log w, log h, objectness, 80 COCO class scores), anchor points on the grids of strides
8, 16, 32 in that order, row-major. Objectness and class scores are already sigmoids.

The export declares a fixed input, but nothing in the graph depends on it: convolutions, the Focus
slices (ends at INT64_MAX), nearest x2 upsampling by scale, and reshapes to ``[1, 85, -1]``. So the input
dimensions are rewritten as symbolic at load (``dynamic_input``) and each frame is letterboxed to the
long side ``imgsz`` (the export's size unless ``--det-imgsz``) with its short side rounded up to a
multiple of 32 (the largest stride): a 16:9 frame runs at 416x256 instead of 416x416, the same pixels
at the same scale, with 38 % less padding to compute. The anchor grids follow that size.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from .detections import Detections
from .errors import DetectorError

STRIDES: Final = (8, 16, 32)
PAD_VALUE: Final = 114
PERSON: Final = 0  # COCO class 0
MAX_DET: Final = 300


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def input_hw(frame_hw: tuple[int, int], imgsz: int, multiple: int = STRIDES[-1]) -> tuple[int, int]:
    """Network input (h, w) for a frame (H, W): long side ``imgsz``, the other side rounded up to ``multiple``."""
    ratio = imgsz / max(frame_hw)
    return tuple(max(multiple, -(-round(side * ratio) // multiple) * multiple) for side in frame_hw)


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Resize ``image`` (H, W, 3) to fit ``size`` (h, w) keeping its aspect, top-left, pad 114.
    Returns the (1, 3, h, w) float32 blob (BGR 0-255) and the scale ``ratio`` (model px = frame px * ratio)."""
    height, width = size
    ratio = min(height / image.shape[0], width / image.shape[1])
    new_w, new_h = max(1, round(image.shape[1] * ratio)), max(1, round(image.shape[0] * ratio))
    padded = np.full((height, width, 3), PAD_VALUE, np.uint8)
    padded[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], np.float32), ratio


def make_grids(size: tuple[int, int], strides: tuple[int, ...] = STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Anchor points (A, 2) as (col, row) and their strides (A, 1), stride 8 first, each grid row-major."""
    grids, expanded = [], []
    for stride in strides:
        rows, cols = size[0] // stride, size[1] // stride
        row, col = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        grids.append(np.stack([col, row], axis=-1).reshape(-1, 2))
        expanded.append(np.full((rows * cols, 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(expanded).astype(np.float32)


def decode(raw: np.ndarray, grid: np.ndarray, strides: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw head output (A, 85) -> boxes (A, 4) xyxy in model px and person scores (A,)."""
    centre = (raw[:, :2] + grid) * strides
    half = np.exp(raw[:, 2:4]) * strides * 0.5
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    return boxes, raw[:, 4] * raw[:, 5 + PERSON]


def nms(boxes: np.ndarray, scores: np.ndarray, conf: float, iou: float, max_det: int = MAX_DET) -> np.ndarray:
    """Indices kept by OpenCV's NMS among ``scores >= conf``, best first, at most ``max_det``."""
    candidates = np.flatnonzero(scores >= conf)
    if candidates.size == 0:
        return candidates
    xywh = np.concatenate([boxes[candidates, :2], boxes[candidates, 2:] - boxes[candidates, :2]], axis=1)
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores[candidates].tolist(), conf, iou)  # best first
    return candidates[np.asarray(kept, np.int64).reshape(-1)[:max_det]]  # (top_k would cut before NMS)


class YoloxDetector:
    """YOLOX (raw-head ONNX export) on ONNX Runtime's CPU provider, people only."""

    full_frame = False

    def __init__(self, path: str | os.PathLike, conf: float = 0.3, iou: float = 0.45, threads: int | None = None,
                 max_det: int = MAX_DET, sha256: str | None = None, spinning: bool = False,
                 imgsz: int | None = None) -> None:
        """``sha256``: expected digest (the bundled file), checked before loading. ``spinning``: ORT
        worker threads busy-wait between calls (faster alone, but they steal cores from the pose model).
        ``imgsz``: long side of the network input, a multiple of 32 (default: the export's own size)."""
        path = Path(path)
        self.name = str(path)
        self.conf, self.iou, self.max_det = conf, iou, max_det
        if sha256 is not None:
            check_bundled(path, sha256)
        self.session, self.size = open_session(path, threads, spinning)
        self.input_name = self.session.get_inputs()[0].name
        self.imgsz = imgsz or max(self.size)
        if self.imgsz % STRIDES[-1] or self.imgsz < STRIDES[-1]:
            raise DetectorError(f"--det-imgsz {self.imgsz}: YOLOX needs a multiple of {STRIDES[-1]} (e.g. 320, 416)")
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def grids(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Anchor points and strides of an input (h, w), made once per size."""
        if size not in self._grids:
            self._grids[size] = make_grids(size)
        return self._grids[size]

    def __call__(self, image: np.ndarray) -> Detections:
        size = input_hw(image.shape[:2], self.imgsz)
        blob, ratio = letterbox(image, size)
        raw = self.session.run(None, {self.input_name: blob})[0][0]
        grid, strides = self.grids(size)
        if len(raw) != len(grid):
            raise DetectorError(f"'{self.name}' is not a YOLOX head export: {len(raw)} anchor points, expected "
                                f"{len(grid)} for a {size[1]}x{size[0]} input")
        boxes, scores = decode(raw, grid, strides)
        keep = nms(boxes, scores, self.conf, self.iou, self.max_det)
        if keep.size == 0:
            return Detections.empty()
        height, width = image.shape[:2]
        frame_boxes = np.clip(boxes[keep] / ratio, 0, [width, height, width, height])
        return Detections(frame_boxes.astype(np.float32), scores[keep].astype(np.float32))


def check_bundled(path: Path, expected: str) -> None:
    """One-line DetectorError when the bundled file is missing or its sha256 differs."""
    restore = "restore it with `git checkout assets/detectors/` (or reinstall LPN Pose), or pass --detector PATH"
    if not path.is_file():
        raise DetectorError(f"bundled person detector '{path}' is missing; {restore}")
    if sha256_of(path) != expected:
        raise DetectorError(f"bundled person detector '{path}' is corrupt (sha256 mismatch); {restore}")


def dynamic_input(path: Path) -> tuple[bytes, tuple[int, int]]:
    """The ONNX file with its input height and width (and the output's anchor count) made symbolic, and the
    (h, w) it declared. One-line DetectorError for a file that is not a fixed-size 1x3xHxW image model."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends for files that are not ONNX
        raise DetectorError(f"cannot load detector '{path}' (not an ONNX file); pass another --detector PATH, "
                            f"or omit it for the bundled YOLOX-nano") from exc
    dims = model.graph.input[0].type.tensor_type.shape.dim
    declared = input_size(path, [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims])
    for dim, name in zip(dims[2:], ("height", "width")):
        dim.Clear()
        dim.dim_param = name
    for output in model.graph.output:
        out_dims = output.type.tensor_type.shape.dim
        if len(out_dims) == 3:
            out_dims[1].Clear()
            out_dims[1].dim_param = "anchors"
    del model.graph.value_info[:]  # shapes inferred for the declared size; ORT infers them again
    return model.SerializeToString(), declared


def open_session(path: Path, threads: int | None, spinning: bool):
    """onnxruntime.InferenceSession on the CPU with a symbolic input size (``dynamic_input``), all graph
    optimisations, and the (h, w) the file declared; one-line DetectorError on failure."""
    import onnxruntime as ort

    from .backends import cpu_threads

    if not path.is_file():
        raise DetectorError(f"detector '{path}' not found; pass --detector PATH, or omit it for the bundled YOLOX-nano")
    model, declared = dynamic_input(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or cpu_threads()
    options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]), declared
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DetectorError(f"cannot load detector '{path}' ({reason[:150]}); pass another --detector PATH, "
                            f"or omit it for the bundled YOLOX-nano") from exc


def input_size(path: Path, shape: list) -> tuple[int, int]:
    """(h, w) of a fixed NCHW input; DetectorError for dynamic or non-image inputs."""
    if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[2:]) or shape[1] not in (3, "3"):
        raise DetectorError(f"'{path}' is not a YOLOX export with a fixed 1x3xHxW input (input shape {shape})")
    return int(shape[2]), int(shape[3])
