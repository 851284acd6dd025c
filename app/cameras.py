"""The cameras Qt finds, by name, each with the index OpenCV (and ``--camera N``) opens it by.

Qt Multimedia's ``QMediaDevices.videoInputs()`` names the cameras; capture itself stays with OpenCV. On
Linux a camera's Qt id is its V4L2 device path, ``/dev/videoN``, and N is OpenCV's index; elsewhere OpenCV
numbers the cameras in the order the system lists them, which is also Qt's order. Without Qt Multimedia
(a minimal PyQt6 install, or a system without its libraries) the list is empty and cameras are opened by
number only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from PyQt6.QtCore import QLoggingCategory, QObject, pyqtSignal

# Qt Multimedia logs a line for every optional library it does not find (PipeWire, VA-API): not our news.
QLoggingCategory.setFilterRules("qt.multimedia.symbolsresolver=false\nqt.multimedia.ffmpeg=false")

try:
    from PyQt6.QtMultimedia import QMediaDevices
except ImportError:  # no Qt Multimedia here: cameras by number only
    QMediaDevices = None

V4L2_DEVICE = re.compile(rb"/dev/video(\d+)$")


@dataclass(frozen=True, slots=True)
class Camera:
    index: int  # what OpenCV and --camera N take
    name: str   # what the system calls it, e.g. "Integrated Camera"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.index})"


def opencv_index(device_id: bytes, position: int) -> int:
    """OpenCV's index of the camera with Qt id ``device_id``, listed at ``position`` by Qt."""
    match = V4L2_DEVICE.search(bytes(device_id))
    return int(match.group(1)) if match else position


def list_cameras() -> list[Camera]:
    """The cameras the system has now, in Qt's order (empty without Qt Multimedia)."""
    if QMediaDevices is None:
        return []
    return [Camera(opencv_index(device.id().data(), position), device.description())
            for position, device in enumerate(QMediaDevices.videoInputs())]


class CameraWatch(QObject):
    """Emits ``changed`` when a camera is plugged in or out (needs Qt Multimedia; silent without it)."""

    changed = pyqtSignal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._devices = QMediaDevices(self) if QMediaDevices is not None else None
        if self._devices is not None:
            self._devices.videoInputsChanged.connect(self.changed)
