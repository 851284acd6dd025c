"""Person detectors behind one call: BGR frame -> person boxes (N, 4) xyxy px + scores (N,).

``load_detector`` resolves what to use (docs/PIPELINE.md, "Detector"):
  ``--detector PATH``        a YOLO ``.pt``/``.onnx`` file or an ``*_openvino_model/`` folder (ultralytics,
                             task 'detect'); a ``yolox*.onnx`` file runs as ``YoloxDetector`` (lpn_core/yolox.py);
  ``--detector yolov8n.pt``  the cached ultralytics model, downloaded there on first use (online only);
  ``--detector none``        the whole frame is one person (webcam, one person close up); the pipeline then
                             follows the previous frame's keypoints (MoveNet-style smart cropping);
  default (no flag)          the bundled YOLOX-nano, ``assets/detectors/yolox_nano_416x416.onnx`` (Apache-2.0,
                             sha256-checked at load): works offline, nothing to download.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Final

import numpy as np

from .assets import asset_path
from .backends import torch_threads_kept
from .detections import Detections, PersonDetector
from .errors import DetectorError
from .weights import cache_dir
from .yolox import YoloxDetector

DEFAULT_ONLINE: Final = "yolov8n.pt"  # ultralytics downloads it from its GitHub release on first use (AGPL-3.0)
BUNDLED: Final = asset_path("detectors/yolox_nano_416x416.onnx")  # checkout: assets/; installed: lpn_pose_assets/
BUNDLED_SHA256: Final = "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"  # Apache-2.0, Megvii
NONE: Final = "none"


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
        with torch_threads_kept():  # reading .names sets up an exported model's predictor
            self.classes = person_classes(self.model.names)
        self.conf, self.iou, self.imgsz, self.device = conf, iou, imgsz, device

    def __call__(self, image: np.ndarray) -> Detections:
        extra = {"imgsz": self.imgsz} if self.imgsz else {}
        with torch_threads_kept():
            result = self.model.predict(image, conf=self.conf, iou=self.iou, classes=self.classes, device=self.device,
                                        verbose=False, save=False, **extra)[0]
        boxes = result.boxes
        return Detections(boxes.xyxy.cpu().numpy().astype(np.float32).reshape(-1, 4),
                          boxes.conf.cpu().numpy().astype(np.float32).reshape(-1))


def where_to_put() -> str:
    """The one-line advice every DetectorError ends with."""
    return ("pass --detector PATH (a YOLO .pt/.onnx file, an *_openvino_model folder or a yolox*.onnx export), "
            f"put {DEFAULT_ONLINE} in {cache_dir() / 'detectors'}/ and pass --detector {DEFAULT_ONLINE}, "
            "or omit --detector for the bundled YOLOX-nano")


def online(host: str = "github.com", timeout_s: float = 2.0) -> bool:
    """Quick reachability check for ultralytics' downloads; honours YOLO_OFFLINE=1."""
    if os.environ.get("YOLO_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def is_yolox(path: Path) -> bool:
    """A YOLOX raw-head ONNX export, recognised by its file name (``yolox*.onnx``)."""
    return path.is_file() and path.suffix.lower() == ".onnx" and path.name.lower().startswith("yolox")


def resolve_detector(spec: str | os.PathLike | None, allow_download: bool = True) -> str | Path:
    """What to load: 'none', the bundled YOLOX-nano (``spec=None``), an explicit path, or ``yolov8n.pt``
    from the cache (downloaded there first when online). Never touches the network for ``spec=None``."""
    if spec is None:
        return BUNDLED
    if str(spec).lower() == NONE:
        return NONE
    path = Path(spec).expanduser()
    if path.exists():
        return path
    if str(spec) != DEFAULT_ONLINE:
        raise DetectorError(f"detector '{spec}' not found; {where_to_put()}")
    cached = cache_dir() / "detectors" / DEFAULT_ONLINE
    if cached.is_file() or (allow_download and online()):
        return cached  # YoloDetector downloads the ultralytics release asset to this path
    raise DetectorError(f"{DEFAULT_ONLINE} is not in {cached.parent}/ and cannot be downloaded offline; put it "
                        "there, pass --detector PATH, or omit --detector for the bundled YOLOX-nano")


def load_yolox(path: Path, conf: float, iou: float, imgsz: int | None, threads: int | None) -> PersonDetector:
    """A YOLOX export on ONNX Runtime's CPU provider; the bundled file is sha256-checked first. ``imgsz``:
    long side of its input (a multiple of 32; default: the export's own size)."""
    return YoloxDetector(path, conf=conf, iou=iou, threads=threads, imgsz=imgsz,
                         sha256=BUNDLED_SHA256 if path == BUNDLED else None)


def load_detector(spec: str | os.PathLike | None = None, conf: float = 0.3, iou: float = 0.5,
                  imgsz: int | None = None, device: str = "cpu", allow_download: bool = True,
                  threads: int | None = None) -> PersonDetector:
    """Build the detector ``resolve_detector`` picks (default: the bundled YOLOX-nano, CPU only).
    ``threads``: ONNX Runtime intra-op threads of YOLOX (None: all cores); ``device`` applies to YOLO only."""
    target = resolve_detector(spec, allow_download)
    if target == NONE:
        return FullFrameDetector()
    target = Path(target)
    if target == BUNDLED or is_yolox(target):
        return load_yolox(target, conf, iou, imgsz, threads)
    if not target.exists():  # the cached yolov8n.pt, to be downloaded now
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            return YoloDetector(target, conf, iou, imgsz, device)
        except DetectorError:
            target.unlink(missing_ok=True)
            raise
    return YoloDetector(target, conf, iou, imgsz, device)
