"""The Model panel (model, backend, precision, detection, threshold, smoothing) and the Show panel (what the
overlay and the window show). Widgets start from ``GuiState`` and write every change back to it; the panels
only ask, through signals, and the window forwards to the workers."""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                             QSlider, QSpinBox, QWidget)

from lpn_core.model import list_models
from lpn_core.weights import best_bundled_model

from .settings import GuiState

BACKENDS = {"onnx": "ONNX Runtime", "torch": "PyTorch"}
PRECISIONS = {"auto": "Auto", "fp32": "fp32", "int8": "INT8"}
PRECISION_TIP = "LPN arithmetic on ONNX Runtime. Auto: INT8 where its AP is within 0.01 of fp32 and it " \
                "measures faster on this CPU, else fp32"
RUNNING = {"onnx": "ONNX Runtime fp32", "onnx-int8": "ONNX Runtime INT8", "torch": "PyTorch"}  # Backend.name


def display_name(model: str) -> str:
    """'lpn101' -> 'LPN-101' (the registry name stays the data behind the dropdown)."""
    digits = model.removeprefix("lpn")
    return f"LPN-{digits}" if digits.isdigit() else model


def add_shortcut(window: QWidget, keys: str, slot) -> None:
    """``keys`` run ``slot`` anywhere in ``window`` (unless a text field takes the key)."""
    action = QAction(window)
    action.setShortcut(QKeySequence(keys))
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.triggered.connect(slot)
    window.addAction(action)


def combo(items: dict[str, str], current: str) -> QComboBox:
    """A dropdown of ``items`` (data -> text), wide enough for its longest text."""
    box = QComboBox()
    for key, text in items.items():
        box.addItem(text, key)
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
    box.setCurrentIndex(max(0, box.findData(current)))
    return box


class ModelBox(QGroupBox):
    """``model_requested``: model, backend or precision changed (a new model must be built);
    ``pipeline_changed``: cheap Pipeline.update fields; ``threshold_changed``: the keypoint threshold."""

    model_requested = pyqtSignal()
    pipeline_changed = pyqtSignal(dict)
    threshold_changed = pyqtSignal(float)

    def __init__(self, state: GuiState, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self._state = state
        form = QFormLayout(self)
        best = best_bundled_model(list_models())
        self.model_combo = combo({name: display_name(name) + (" (best offline)" if name == best else "")
                                  for name in list_models()}, state.model)
        self.backend_combo = combo(BACKENDS, state.backend)
        self.precision_combo = combo(PRECISIONS, state.precision)
        self.precision_combo.setToolTip(PRECISION_TIP)
        self.precision_combo.setEnabled(state.backend == "onnx")
        for box in (self.model_combo, self.backend_combo, self.precision_combo):
            box.currentIndexChanged.connect(self._on_model_choice)
        self.det_every_spin = QSpinBox()
        self.det_every_spin.setRange(1, 60)
        self.det_every_spin.setValue(state.det_every)
        self.det_every_spin.setToolTip("Run the person detector every N frames; in between, boxes follow "
                                       "the keypoints")
        self.det_every_spin.valueChanged.connect(self._on_det_every)
        self.kpt_slider = QSlider(Qt.Orientation.Horizontal)
        self.kpt_slider.setRange(0, 100)
        self.kpt_slider.setValue(round(state.kpt_thr * 100))
        self.kpt_value = QLabel(f"{state.kpt_thr:.2f}")
        self.kpt_slider.valueChanged.connect(self._on_kpt_thr)
        threshold = QHBoxLayout()
        threshold.addWidget(self.kpt_slider, 1)
        threshold.addWidget(self.kpt_value)
        self.smoothing_check = QCheckBox("Smoothing (One-Euro)")
        self.smoothing_check.setChecked(state.smoothing)
        self.smoothing_check.toggled.connect(self._on_smoothing)
        form.addRow("Model", self.model_combo)
        form.addRow("Backend", self.backend_combo)
        form.addRow("Precision", self.precision_combo)
        form.addRow("Detect every N", self.det_every_spin)
        form.addRow("Keypoint thr.", threshold)
        form.addRow(self.smoothing_check)

    def add_shortcuts(self, window: QWidget) -> None:
        """Ctrl+1, Ctrl+2, ... choose the models in dropdown order."""
        for i in range(self.model_combo.count()):
            add_shortcut(window, f"Ctrl+{i + 1}", lambda _=False, i=i: self.model_combo.setCurrentIndex(i))

    def show_running(self, model: str, backend: str) -> None:
        """Put the dropdowns back to what runs (a requested model could not load), without a new request."""
        for box, value in ((self.model_combo, model), (self.backend_combo, backend)):
            box.blockSignals(True)
            box.setCurrentIndex(max(0, box.findData(value)))
            box.blockSignals(False)
        self._state.model, self._state.backend = model, backend

    def _on_model_choice(self) -> None:
        state = self._state
        state.model, state.backend = self.model_combo.currentData(), self.backend_combo.currentData()
        state.precision = self.precision_combo.currentData()
        self.precision_combo.setEnabled(state.backend == "onnx")  # PyTorch runs fp32
        self.model_requested.emit()

    def _on_det_every(self, n: int) -> None:
        self._state.det_every = n
        self.pipeline_changed.emit({"det_every": n})

    def _on_kpt_thr(self, value: int) -> None:
        self._state.kpt_thr = value / 100
        self.kpt_value.setText(f"{self._state.kpt_thr:.2f}")
        self.pipeline_changed.emit({"kpt_thr": self._state.kpt_thr})
        self.threshold_changed.emit(self._state.kpt_thr)

    def _on_smoothing(self, on: bool) -> None:
        self._state.smoothing = on
        self.pipeline_changed.emit({"smoothing": on})


class ShowBox(QGroupBox):
    """Boxes, IDs and the HUD on the frame (``draw_changed`` with DrawOptions fields), and the analysis dock
    (``analysis_toggled``). H and A toggle the HUD and the dock."""

    draw_changed = pyqtSignal(dict)
    analysis_toggled = pyqtSignal(bool)

    def __init__(self, state: GuiState, parent: QWidget | None = None) -> None:
        super().__init__("Show", parent)
        self._state = state
        self.boxes_check = QCheckBox("Boxes")
        self.ids_check = QCheckBox("IDs")
        self.hud_check = QCheckBox("HUD (H)")
        self.hud_check.setToolTip("The readout on the frame: FPS, stage times, people, weights")
        self.analysis_check = QCheckBox("Analysis (A)")
        self.analysis_check.setToolTip("Joint angles and stage times of one person, live")
        grid = QGridLayout(self)
        for i, (box, on) in enumerate(((self.boxes_check, state.show_boxes), (self.ids_check, state.show_ids),
                                       (self.hud_check, state.show_hud), (self.analysis_check, state.show_analysis))):
            box.setChecked(on)
            grid.addWidget(box, i // 2, i % 2)
        for box in (self.boxes_check, self.ids_check, self.hud_check):
            box.toggled.connect(self._on_draw)
        self.analysis_check.toggled.connect(self._on_analysis)

    def add_shortcuts(self, window: QWidget) -> None:
        add_shortcut(window, "H", self.hud_check.toggle)
        add_shortcut(window, "A", self.analysis_check.toggle)

    def _on_draw(self) -> None:
        state = self._state
        state.show_boxes, state.show_ids = self.boxes_check.isChecked(), self.ids_check.isChecked()
        state.show_hud = self.hud_check.isChecked()
        self.draw_changed.emit({"show_boxes": state.show_boxes, "show_ids": state.show_ids,
                                "show_hud": state.show_hud})

    def _on_analysis(self, on: bool) -> None:
        self._state.show_analysis = on
        self.analysis_toggled.emit(on)
