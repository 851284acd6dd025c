"""The status bar: fixed sections side by side, each fact in one of them, none ever drawn over another.

    [ message (what just happened) ........ ][ model · weights · backend · detector ][ FPS ][ People ][ stage ms ]

QStatusBar's own temporary message is painted over the bar's left part and can run under permanent
widgets; here the message is a label in the layout like the others. Every section elides its text (the full
text is its tooltip) rather than overflow, so at any window width the sections' geometries stay disjoint.
"""
from __future__ import annotations

from PyQt6.QtCore import QSize, Qt
from PyQt6.QtGui import QResizeEvent
from PyQt6.QtWidgets import QLabel, QSizePolicy, QStatusBar, QWidget

from lpn_core.draw import STAGES

MIN_SECTION_PX = 40
STAGE_SAMPLE = " · ".join(f"{name} 99" for name in STAGES) + " ms"  # a wide stage readout: the section's width


class ElidedLabel(QLabel):
    """A one-line label that shrinks to MIN_SECTION_PX by eliding its text ("…") instead of overflowing."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt name)
        if text != self._full:
            self._full = text
            self.setToolTip(text)
            self._elide()
            self.updateGeometry()

    def text(self) -> str:
        """The full text, as set (what is painted may be elided)."""
        return self._full

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(self.fontMetrics().horizontalAdvance(self._full) + 8, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(MIN_SECTION_PX, super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(0, self.width() - 4))
        super().setText(shown)


class StatusBar(QStatusBar):
    """Sections: message (stretches), model, FPS, people, per-stage milliseconds. ``showMessage`` and
    ``currentMessage`` work as in QStatusBar but use the message section."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self.message_label = ElidedLabel()
        self.model_label = ElidedLabel("No model yet")
        self.fps_label = self._fixed("FPS –", "FPS 999.9")
        self.people_label = self._fixed("People –", "People 99")
        self.latency_label = ElidedLabel("")
        self.latency_label.setMinimumWidth(MIN_SECTION_PX)
        self.latency_label.setFixedWidth(self.fontMetrics().horizontalAdvance(STAGE_SAMPLE) + 8)
        self.addWidget(self.message_label, 1)
        for label in (self.model_label, self.fps_label, self.people_label, self.latency_label):
            self.addPermanentWidget(label)

    def _fixed(self, text: str, widest: str) -> QLabel:
        label = QLabel(text)
        label.setFixedWidth(self.fontMetrics().horizontalAdvance(widest) + 8)
        return label

    @property
    def sections(self) -> list[QLabel]:
        return [self.message_label, self.model_label, self.fps_label, self.people_label, self.latency_label]

    def showMessage(self, text: str, timeout: int = 0) -> None:  # noqa: N802 (Qt name)
        self.message_label.setText(text)

    def currentMessage(self) -> str:  # noqa: N802 (Qt name)
        return self.message_label.text()

    def clearMessage(self) -> None:  # noqa: N802 (Qt name)
        self.message_label.setText("")

    def show_numbers(self, fps: float | None, people: int, times_ms: dict[str, float]) -> None:
        self.fps_label.setText("FPS –" if fps is None else f"FPS {fps:.1f}")
        self.people_label.setText(f"People {people}")
        self.latency_label.setText(" · ".join(f"{name} {times_ms[name]:.0f}" for name in STAGES if name in times_ms)
                                   + " ms")
