"""The Source panel: cameras by name, a video file, and the file controls (process every frame, loop,
pause / step, progress). It only asks; the window starts and steers the capture thread."""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QProgressBar, QPushButton,
                             QSizePolicy, QVBoxLayout, QWidget)

from . import cameras
from .capture import SourceInfo
from .settings import GuiState

VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v);;All files (*)"


class SourceBox(QGroupBox):
    """Emits ``open_requested`` with a camera index (int) or a file path (str), and the file controls'
    changes; the choices are written to ``state``."""

    open_requested = pyqtSignal(object)
    process_all_changed = pyqtSignal(bool)
    loop_changed = pyqtSignal(bool)
    pause_changed = pyqtSignal(bool)
    step_requested = pyqtSignal()

    def __init__(self, state: GuiState, parent: QWidget | None = None) -> None:
        super().__init__("Source", parent)
        self._state = state
        column = QVBoxLayout(self)
        self.camera_combo = QComboBox()
        self.camera_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.camera_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.camera_button = QPushButton("Open camera")
        self.camera_button.clicked.connect(lambda: self.open_requested.emit(self.camera_combo.currentData()))
        self.file_button = QPushButton("Open video file…")
        self.file_button.clicked.connect(self.choose_video)
        self.process_all_check = self._check("Process every frame", state.process_all, self._on_process_all)
        self.process_all_check.setToolTip("Video files: process every frame as fast as possible (none dropped) "
                                          "instead of playing at the video's own speed")
        self.loop_check = self._check("Loop video", state.loop, self._on_loop)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._on_pause)
        self.step_button = QPushButton("Step")
        self.step_button.clicked.connect(self.step)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m frames")
        self.progress.setVisible(False)
        column.addLayout(row(self.camera_combo, self.camera_button))
        for widget in (self.file_button, self.process_all_check, self.loop_check):
            column.addWidget(widget)
        column.addLayout(row(self.pause_button, self.step_button))
        column.addWidget(self.progress)
        self.watch = cameras.CameraWatch(self)
        self.watch.changed.connect(self.refresh_cameras)
        self.refresh_cameras()
        self.set_file_controls(False)

    @staticmethod
    def _check(text: str, on: bool, slot) -> QCheckBox:
        box = QCheckBox(text)
        box.setChecked(on)
        box.toggled.connect(slot)
        return box

    # --- cameras -----------------------------------------------------------------------------------
    def refresh_cameras(self) -> None:
        """List the cameras the system has now, by name; the last camera used stays listed by number even
        when the system does not report it (opening it then says why it cannot)."""
        found = cameras.list_cameras()
        if self._state.camera_index not in [camera.index for camera in found]:
            found.append(cameras.Camera(self._state.camera_index, "Camera"))
        self.camera_combo.blockSignals(True)
        self.camera_combo.clear()
        for camera in sorted(found, key=lambda c: c.index):
            self.camera_combo.addItem(camera.label, camera.index)
            self.camera_combo.setItemData(self.camera_combo.count() - 1, camera.label, Qt.ItemDataRole.ToolTipRole)
        self.camera_combo.setCurrentIndex(max(0, self.camera_combo.findData(self._state.camera_index)))
        self.camera_combo.blockSignals(False)

    def select_camera(self, index: int) -> None:
        self._state.camera_index = index
        if self.camera_combo.findData(index) < 0:
            self.refresh_cameras()
        self.camera_combo.setCurrentIndex(self.camera_combo.findData(index))

    # --- files ---------------------------------------------------------------------------------------
    def choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open video", self._state.video_dir, VIDEO_FILTER)
        if path:
            self._state.video_dir = str(Path(path).parent)
            self.open_requested.emit(path)

    def source_closed(self) -> None:
        """No source yet (a new one opening, or the last one failed)."""
        self.progress.setVisible(False)
        self.set_file_controls(False)
        self.pause_button.setChecked(False)

    def source_opened(self, info: SourceInfo) -> None:
        self.set_file_controls(not info.is_camera)
        if not info.is_camera and info.frame_count:
            self.progress.setRange(0, info.frame_count)
            self.progress.setValue(0)
            self.progress.setVisible(True)

    def show_progress(self, index: int) -> None:
        if self.progress.isVisible():
            self.progress.setValue(min(self.progress.maximum(), index + 1))

    def set_file_controls(self, is_file: bool) -> None:
        for widget in (self.pause_button, self.step_button, self.process_all_check, self.loop_check):
            widget.setEnabled(is_file)

    def toggle_pause(self) -> None:
        if self.pause_button.isEnabled():
            self.pause_button.toggle()

    def step(self) -> None:
        """Show the next frame of a file (pauses first)."""
        if self.step_button.isEnabled():
            self.pause_button.setChecked(True)
            self.step_requested.emit()

    def _on_pause(self, paused: bool) -> None:
        self.pause_button.setText("Play" if paused else "Pause")
        self.pause_changed.emit(paused)

    def _on_process_all(self, on: bool) -> None:
        self._state.process_all = on
        self.process_all_changed.emit(on)

    def _on_loop(self, on: bool) -> None:
        self._state.loop = on
        self.loop_changed.emit(on)


def row(*widgets: QWidget) -> QHBoxLayout:
    layout = QHBoxLayout()
    for widget in widgets:
        layout.addWidget(widget)
    return layout
