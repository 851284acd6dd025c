"""numpy BGR frames -> QImage -> paint. The only place in the app where a frame becomes a Qt object."""
from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QMouseEvent, QPainter
from PyQt6.QtWidgets import QSizePolicy, QWidget


def to_qimage(frame: np.ndarray) -> QImage:
    """(H, W, 3) uint8 BGR or (H, W) uint8 gray -> a QImage that owns a copy of the pixels.

    QImage does not own a buffer it is built on, so the result is copied: the array may be reused or
    freed by its producer thread as soon as this returns.
    """
    frame = np.ascontiguousarray(frame)
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] != 3):
        raise ValueError(f"expected an (H, W, 3) or (H, W) uint8 image, got {frame.shape} {frame.dtype}")
    height, width = frame.shape[:2]
    fmt = QImage.Format.Format_BGR888 if frame.ndim == 3 else QImage.Format.Format_Grayscale8
    return QImage(frame.data, width, height, frame.strides[0], fmt).copy()


class FrameView(QWidget):
    """Shows the latest frame scaled to fit (aspect kept, black borders), or a one-line message. A click on
    the frame emits ``clicked`` with the point in frame pixels."""

    clicked = pyqtSignal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._message = "Open a camera or a video file"
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 180)

    @property
    def image(self) -> QImage | None:
        return self._image

    def show_frame(self, frame: np.ndarray) -> None:
        self._image = to_qimage(frame)
        self._message = ""
        self.update()

    def show_message(self, text: str, clear: bool = False) -> None:
        """Overlay ``text`` (drawn over the last frame unless ``clear``)."""
        self._message = text
        if clear:
            self._image = None
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(960, 540)

    def image_rect(self) -> QRectF:
        """Where the frame is painted: the largest centred rectangle with the frame's aspect ratio."""
        if self._image is None or self._image.isNull():
            return QRectF()
        scale = min(self.width() / self._image.width(), self.height() / self._image.height())
        w, h = self._image.width() * scale, self._image.height() * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt name)
        rect, point = self.image_rect(), event.position()
        if rect.contains(point):
            scale = rect.width() / self._image.width()
            self.clicked.emit((point.x() - rect.x()) / scale, (point.y() - rect.y()) / scale)
        super().mousePressEvent(event)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0))
        if self._image is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(self.image_rect(), self._image)
        if self._message:
            painter.setPen(QColor(235, 235, 235))
            font = painter.font()
            font.setPointSize(max(11, font.pointSize() + 3))
            painter.setFont(font)
            painter.drawText(self.rect(), int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap),
                             self._message)
        painter.end()
