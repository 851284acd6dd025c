"""The main window: the live view, the controls, the status bar. It only paints and forwards requests;
capture, inference, model loading and file writing run in the workers (docs/APP.md)."""
from __future__ import annotations

import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
from PyQt6.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent, QKeySequence
from PyQt6.QtWidgets import (QApplication, QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox,
                             QHBoxLayout, QLabel, QMainWindow, QProgressBar, QPushButton, QSlider, QSpinBox,
                             QVBoxLayout, QWidget)

from lpn_core.errors import LpnError
from lpn_core.model import list_models
from lpn_core.pipeline import PipelineSettings
from lpn_core.quantize import BACKEND_PRECISION
from lpn_core.stream import json_header, unique_path

from . import settings as store_mod
from .view import FrameView
from .workers import (CaptureWorker, DrawOptions, FrameChannel, InferenceWorker, LoadedModel, ModelLoader,
                      SourceInfo)

BACKENDS = {"onnx": "ONNX Runtime", "torch": "PyTorch"}
PRECISIONS = {"auto": "Auto (INT8 where faster)", "fp32": "fp32", "int8": "INT8"}
RUNNING = {"onnx": "ONNX Runtime fp32", "onnx-int8": "ONNX Runtime INT8", "torch": "PyTorch"}  # backend.name
VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v);;All files (*)"
JOIN_MS = 3000
MAX_PAINT_HZ = 30  # frames processed faster than this are counted, recorded and exported, but not all painted
OUTPUT_LABELS = {"record": ("Record MP4", "Stop recording"), "json": ("Export keypoints JSON", "Stop JSON export")}


def display_name(model: str) -> str:
    """'lpn101' -> 'LPN-101' (the registry name stays the data behind the dropdown)."""
    digits = model.removeprefix("lpn")
    return f"LPN-{digits}" if digits.isdigit() else model


def parse_source(text: str) -> str | int:
    """A remembered source: '0' is camera 0, anything else a path."""
    return int(text) if text.strip().isdigit() else text


class MainWindow(QMainWindow):
    """Live frame with skeletons, FPS and per-stage latency; model, detection, drawing and output controls."""

    frame_shown = pyqtSignal(int)  # index of the frame just painted

    def __init__(self, settings: PipelineSettings | None = None, source: str | int | None = None,
                 store: QSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("LPN Pose")
        self._store = store if store is not None else store_mod.open_store()
        cli = settings or PipelineSettings()
        self._cli_model, self._cli_weights = cli.model, cli.weights
        self.settings, self.state = store_mod.merge(cli, store_mod.load_state(self._store), PipelineSettings())
        if cli.weights not in (None, "untrained"):  # a checkpoint file belongs to the model given with it
            self.settings, self.state.model = replace(self.settings, model=cli.model), cli.model
        if self.settings.model not in list_models():
            self.settings = replace(self.settings, model=list_models()[0])
        if self.settings.backend not in BACKENDS:
            self.settings = replace(self.settings, backend="onnx")
        if self.settings.precision not in PRECISIONS or self.settings.backend != "onnx":
            self.settings = replace(self.settings, precision="auto")  # PyTorch runs fp32
        self.source_info: SourceInfo | None = None
        self.frames_shown = 0
        self.last_rendered = None
        self.last_error = ""
        self.errors: list[str] = []  # every error shown, oldest first
        self._running_model = self._running_backend = self._running_name = ""
        self._detector = ""  # the pipeline's detector (file name), shown beside the model
        self._weights_label = ""  # "project-trained, AP 0.xx" / "official" / ..., shown beside the model
        self._capture: CaptureWorker | None = None
        self._capture_count = 0
        self._old_captures: list[CaptureWorker] = []  # stopped, kept so tests can check they finished
        self._closed = False

        self._channel = FrameChannel()
        self.inference = InferenceWorker(self._channel, DrawOptions(self.state.kpt_thr, self.state.show_boxes,
                                                                    self.state.show_ids))
        self.inference.frame_ready.connect(self._on_frame_ready)
        self._last_paint_s = 0.0
        self._paint_timer = QTimer(self)
        self._paint_timer.setSingleShot(True)
        self._paint_timer.timeout.connect(self._on_frame_ready)
        self.inference.model_ready.connect(self._on_model_ready)
        self.inference.failed.connect(self._on_inference_failed)
        self.inference.warned.connect(self.show_warning)
        self.loader = ModelLoader()
        self.loader.loaded.connect(self._on_model_loaded)
        self.loader.failed.connect(self._on_model_failed)

        self._build_ui()
        geometry = self._store.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self.inference.start()
        self._request_model()
        if source is None and self.state.last_source:
            source = parse_source(self.state.last_source)
        if source is not None:
            self.open_source(source)

    # --- layout ------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.view = FrameView()
        panel = QWidget()
        column = QVBoxLayout(panel)
        column.addWidget(self._source_box())
        column.addWidget(self._model_box())
        column.addWidget(self._output_box())
        column.addStretch(1)
        panel.setFixedWidth(310)

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(4, 4, 4, 4)
        row.addWidget(self.view, 1)
        row.addWidget(panel)
        self.setCentralWidget(central)

        self.fps_label, self.people_label, self.latency_label = QLabel("FPS –"), QLabel("People –"), QLabel("")
        self.model_label = QLabel("")
        for label in (self.model_label, self.fps_label, self.people_label, self.latency_label):
            self.statusBar().addPermanentWidget(label)
        self._add_shortcuts()
        self.resize(1280, 720)

    def _source_box(self) -> QGroupBox:
        box = QGroupBox("Source")
        form = QVBoxLayout(box)
        cam_row = QHBoxLayout()
        self.camera_spin = QSpinBox()
        self.camera_spin.setRange(0, 63)
        self.camera_spin.setValue(self.state.camera_index)
        self.camera_spin.setPrefix("Camera ")
        self.camera_button = QPushButton("Open camera")
        self.camera_button.clicked.connect(lambda: self.open_source(self.camera_spin.value()))
        cam_row.addWidget(self.camera_spin)
        cam_row.addWidget(self.camera_button)
        form.addLayout(cam_row)
        self.file_button = QPushButton("Open video file…")
        self.file_button.clicked.connect(self.choose_video)
        form.addWidget(self.file_button)
        self.process_all_check = QCheckBox("Process every frame")
        self.process_all_check.setToolTip("Video files: process every frame as fast as possible (none dropped) "
                                          "instead of playing at the video's own speed")
        self.process_all_check.setChecked(self.state.process_all)
        self.process_all_check.toggled.connect(self._on_process_all)
        self.loop_check = QCheckBox("Loop video")
        self.loop_check.setChecked(self.state.loop)
        self.loop_check.toggled.connect(self._on_loop)
        form.addWidget(self.process_all_check)
        form.addWidget(self.loop_check)
        play_row = QHBoxLayout()
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self.set_paused)
        self.step_button = QPushButton("Step")
        self.step_button.clicked.connect(self.step)
        play_row.addWidget(self.pause_button)
        play_row.addWidget(self.step_button)
        form.addLayout(play_row)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m frames")
        self.progress.setVisible(False)
        form.addWidget(self.progress)
        self._set_file_controls(False)
        return box

    def _model_box(self) -> QGroupBox:
        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.model_combo = QComboBox()
        for name in list_models():
            self.model_combo.addItem(display_name(name), name)
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(self.settings.model)))
        self.model_combo.currentIndexChanged.connect(lambda _: self._request_model())
        form.addRow("Model", self.model_combo)
        self.backend_combo = QComboBox()
        for key, label in BACKENDS.items():
            self.backend_combo.addItem(label, key)
        self.backend_combo.setCurrentIndex(max(0, self.backend_combo.findData(self.settings.backend)))
        self.backend_combo.currentIndexChanged.connect(lambda _: self._request_model())
        form.addRow("Backend", self.backend_combo)
        self.precision_combo = QComboBox()
        for key, label in PRECISIONS.items():
            self.precision_combo.addItem(label, key)
        self.precision_combo.setCurrentIndex(max(0, self.precision_combo.findData(self.settings.precision)))
        self.precision_combo.setToolTip("LPN arithmetic on ONNX Runtime. Auto: INT8 where its AP is within 0.01 "
                                        "of fp32 and it measures faster on this CPU")
        self.precision_combo.setEnabled(self.settings.backend == "onnx")
        self.precision_combo.currentIndexChanged.connect(lambda _: self._request_model())
        form.addRow("Precision", self.precision_combo)
        self.det_every_spin = QSpinBox()
        self.det_every_spin.setRange(1, 60)
        self.det_every_spin.setValue(self.settings.det_every)
        self.det_every_spin.setToolTip("Run the person detector every N frames; in between, boxes follow "
                                       "the keypoints")
        self.det_every_spin.valueChanged.connect(self._on_det_every)
        form.addRow("Detect every N", self.det_every_spin)
        thr_row = QHBoxLayout()
        self.kpt_slider = QSlider(Qt.Orientation.Horizontal)
        self.kpt_slider.setRange(0, 100)
        self.kpt_slider.setValue(round(self.settings.kpt_thr * 100))
        self.kpt_value = QLabel(f"{self.settings.kpt_thr:.2f}")
        self.kpt_slider.valueChanged.connect(self._on_kpt_thr)
        thr_row.addWidget(self.kpt_slider, 1)
        thr_row.addWidget(self.kpt_value)
        form.addRow("Keypoint thr.", thr_row)
        self.smoothing_check = QCheckBox("Smoothing (One-Euro)")
        self.smoothing_check.setChecked(self.settings.smoothing)
        self.smoothing_check.toggled.connect(self._on_smoothing)
        form.addRow(self.smoothing_check)
        self.boxes_check = QCheckBox("Boxes")
        self.boxes_check.setChecked(self.state.show_boxes)
        self.ids_check = QCheckBox("IDs")
        self.ids_check.setChecked(self.state.show_ids)
        self.boxes_check.toggled.connect(self._on_draw_options)
        self.ids_check.toggled.connect(self._on_draw_options)
        show_row = QHBoxLayout()
        show_row.addWidget(self.boxes_check)
        show_row.addWidget(self.ids_check)
        form.addRow("Show", show_row)
        return box

    def _output_box(self) -> QGroupBox:
        box = QGroupBox("Output")
        column = QVBoxLayout(box)
        self.output_label = QLabel()
        self.output_label.setWordWrap(True)
        self._show_output_dir()
        folder_button = QPushButton("Output folder…")
        folder_button.clicked.connect(self.choose_output_dir)
        self.record_button = QPushButton(OUTPUT_LABELS["record"][0])
        self.record_button.setCheckable(True)
        self.record_button.toggled.connect(self._on_record_toggled)
        self.snapshot_button = QPushButton("Save snapshot PNG")
        self.snapshot_button.clicked.connect(lambda: self.save_snapshot())
        self.json_button = QPushButton(OUTPUT_LABELS["json"][0])
        self.json_button.setCheckable(True)
        self.json_button.toggled.connect(self._on_json_toggled)
        for widget in (self.output_label, folder_button, self.record_button, self.snapshot_button,
                       self.json_button):
            column.addWidget(widget)
        return box

    def _add_shortcuts(self) -> None:
        def action(text: str, keys: str | QKeySequence.StandardKey, slot) -> QAction:
            act = QAction(text, self)
            act.setShortcut(QKeySequence(keys))
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        action("Pause / play", "Space", self.toggle_pause)
        action("Step one frame", ".", self.step)
        action("Open video", "Ctrl+O", self.choose_video)
        action("Open camera", "Ctrl+K", self.camera_button.click)
        action("Record", "Ctrl+R", self.record_button.toggle)
        action("Snapshot", "Ctrl+S", lambda: self.save_snapshot())
        action("Export JSON", "Ctrl+J", self.json_button.toggle)
        action("Quit", "Ctrl+Q", self.close)
        for i in range(self.model_combo.count()):
            action(f"Model {i + 1}", f"Ctrl+{i + 1}", lambda _=False, i=i: self.model_combo.setCurrentIndex(i))

    # --- sources -----------------------------------------------------------------------------------
    def choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open video", self.state.video_dir, VIDEO_FILTER)
        if path:
            self.state.video_dir = str(Path(path).parent)
            self.open_source(path)

    def open_source(self, source: str | int) -> None:
        """Stop the current source (finalizing a recording of it) and start capturing ``source``."""
        self._stop_capture()
        if self.inference.recording:
            self.record_button.setChecked(False)
        self._channel.clear()
        self.source_info = None
        self.progress.setVisible(False)
        self._set_file_controls(False)
        self.pause_button.setChecked(False)
        self._capture_count += 1
        what = f"camera {source}" if isinstance(source, int) else Path(str(source)).name
        self.view.show_message(f"Opening {what}…", clear=True)
        capture = CaptureWorker(source, self._channel, ident=self._capture_count,
                                process_all=self.process_all_check.isChecked(), loop=self.loop_check.isChecked())
        capture.opened.connect(self._on_source_opened)
        capture.ended.connect(self._on_source_ended)
        capture.failed.connect(self._on_source_failed)
        capture.warned.connect(self.show_warning)
        self._capture = capture
        if isinstance(source, int):
            self.state.camera_index = source
            self.camera_spin.setValue(source)
        capture.start()

    def _stop_capture(self) -> None:
        if self._capture is None:
            return
        capture, self._capture = self._capture, None
        for sig in (capture.opened, capture.ended, capture.failed, capture.warned):
            sig.disconnect()
        capture.stop()
        capture.quit()
        if not capture.wait(JOIN_MS):
            self.show_error("the capture thread did not stop in time")
        self._old_captures.append(capture)

    def _from_current_capture(self) -> bool:
        """Queued signals of a capture already replaced can still arrive after disconnect(): ignore them."""
        return self._capture is not None and self.sender() is self._capture

    def _on_source_opened(self, info: SourceInfo) -> None:
        if not self._from_current_capture():
            return
        self.source_info = info
        self.state.last_source = str(self._capture.source)
        kind = "camera" if info.is_camera else "video"
        detail = "" if info.is_camera else f", {info.frame_count or '?'} frames"
        self.statusBar().showMessage(f"Opened {kind} {info.name} ({info.size[0]}×{info.size[1]}, "
                                     f"{info.fps:.1f} fps{detail})")
        self._set_file_controls(not info.is_camera)
        if not info.is_camera and info.frame_count:
            self.progress.setRange(0, info.frame_count)
            self.progress.setValue(0)
            self.progress.setVisible(True)
        if not self.inference.has_pipeline or not self._running_model:
            self.view.show_message(f"Loading {display_name(self.model_combo.currentData())}…")

    def _on_source_ended(self, frames: int) -> None:
        if self._from_current_capture() and not self.loop_check.isChecked():
            self.statusBar().showMessage(f"End of video: {frames} frames read. Open it again to replay.")

    def _on_source_failed(self, message: str) -> None:
        if not self._from_current_capture():
            return
        if self.source_info is not None:  # it failed mid-run (camera unplugged...): keep what was made of it
            message += self._finish_outputs()
            self.source_info = None
            self._set_file_controls(False)
        self.show_error(message)
        if self.frames_shown == 0 or self.source_info is None:
            self.view.show_message("No source: " + message, clear=True)

    def _finish_outputs(self) -> str:
        """Finalize the recording and JSON export of a source that failed; says what was kept (or "")."""
        kept = []
        if (recorded := self.inference.stop_recording()) is not None:
            kept.append(f"{recorded[1]} frames recorded in {recorded[0]}")
        if (exported := self.inference.stop_json()) is not None:
            kept.append(f"keypoints in {exported}")
        self._set_output_button(self.record_button, False)
        self._set_output_button(self.json_button, False)
        return f"; kept {' and '.join(kept)}; open it again to continue" if kept else "; open it again to continue"

    def _set_file_controls(self, is_file: bool) -> None:
        for widget in (self.pause_button, self.step_button, self.process_all_check, self.loop_check):
            widget.setEnabled(is_file)

    def toggle_pause(self) -> None:
        if self.pause_button.isEnabled():
            self.pause_button.toggle()

    def set_paused(self, paused: bool) -> None:
        if self._capture is not None:
            self._capture.set_paused(paused)
        self.pause_button.setText("Play" if paused else "Pause")
        if self.pause_button.isChecked() != paused:
            self.pause_button.setChecked(paused)

    def step(self) -> None:
        """Show the next frame of a file (pauses first)."""
        if self.source_info is None or self.source_info.is_camera or self._capture is None:
            return
        self.set_paused(True)
        self._capture.step()

    def _on_process_all(self, on: bool) -> None:
        self.state.process_all = on
        if self._capture is not None:
            self._capture.set_process_all(on)

    def _on_loop(self, on: bool) -> None:
        self.state.loop = on
        if self._capture is not None:
            self._capture.set_loop(on)

    # --- models --------------------------------------------------------------------------------------
    def _weights_for(self, model: str) -> str | None:
        """A weights path from the command line belongs to the model it was given for; 'untrained' and
        None (resolve: cache -> download -> bundled) apply to every model."""
        if self._cli_weights in (None, "untrained") or model == self._cli_model:
            return self._cli_weights
        return None

    def _request_model(self) -> None:
        model, backend = self.model_combo.currentData(), self.backend_combo.currentData()
        precision = self.precision_combo.currentData()
        self.precision_combo.setEnabled(backend == "onnx")
        self.settings = replace(self.settings, model=model, backend=backend, weights=self._weights_for(model),
                                precision=precision if backend == "onnx" else "auto")  # PyTorch: fp32
        self.state.model, self.state.backend, self.state.precision = model, backend, precision
        self.loader.request(self.settings, build_pipeline=not self.inference.has_pipeline)
        keeps = f"; {display_name(self._running_model)} keeps running" if self._running_model else ""
        self.statusBar().showMessage(f"Loading {display_name(model)} ({BACKENDS[backend]}){keeps}…")
        self.model_label.setText(f"Loading {display_name(model)}…")

    def _on_model_loaded(self, loaded: LoadedModel) -> None:
        if loaded.request != self.loader.latest or self._closed:
            return  # a newer choice superseded this build
        if loaded.pipeline is not None:
            detector = str(getattr(loaded.pipeline.detector, "name", ""))
            self._detector = Path(detector).name
            self.model_label.setToolTip(f"person detector: {detector}")
            self.inference.set_pipeline(loaded.pipeline)
        else:
            self.inference.swap_estimator(loaded.estimator)

    def _model_text(self, model: str, backend: str) -> str:
        detector = f" · detector {self._detector}" if self._detector else ""
        weights = f" ({self._weights_label})" if self._weights_label else ""
        return f"{display_name(model)}{weights} · {RUNNING.get(backend, backend)}{detector}"

    def _on_model_ready(self, model: str, backend: str, weights_label: str = "") -> None:
        switched, self._running_model = bool(self._running_model), model
        self._running_backend = "torch" if backend == "torch" else "onnx"  # the Backend dropdown's key
        self._running_name = backend  # what runs: onnx (fp32), onnx-int8 or torch
        self._weights_label = weights_label
        self.model_label.setText(self._model_text(model, backend))
        if switched or not self.last_error:  # the first load must not hide an error shown meanwhile
            self.statusBar().showMessage(f"{display_name(model)} running on {RUNNING.get(backend, backend)}")
        if self.source_info is None and self._capture is None:
            self.view.show_message("Open a camera or a video file")

    def _on_model_failed(self, message: str, request: int) -> None:
        if request != self.loader.latest or self._closed:
            return
        if not self._running_model:
            self.model_label.setText("No model")
            self.view.show_message("No model loaded: " + message)
        else:  # the old model keeps running: put the dropdowns back to it
            model, backend = self._running_model, self._running_backend
            for combo, value in ((self.model_combo, model), (self.backend_combo, backend)):
                combo.blockSignals(True)
                combo.setCurrentIndex(max(0, combo.findData(value)))
                combo.blockSignals(False)
            self.settings = replace(self.settings, model=model, backend=backend, weights=self._weights_for(model))
            self.state.model, self.state.backend = model, backend
            self.model_label.setText(self._model_text(model, self._running_name))
        self.show_error(message)

    # --- live settings -------------------------------------------------------------------------------
    def _on_det_every(self, n: int) -> None:
        self.settings = replace(self.settings, det_every=n)
        self.state.det_every = n
        self.inference.update_pipeline(det_every=n)

    def _on_kpt_thr(self, value: int) -> None:
        thr = value / 100
        self.kpt_value.setText(f"{thr:.2f}")
        self.settings = replace(self.settings, kpt_thr=thr)
        self.state.kpt_thr = thr
        self.inference.update_pipeline(kpt_thr=thr)
        self.inference.set_draw(kpt_thr=thr)

    def _on_smoothing(self, on: bool) -> None:
        self.settings = replace(self.settings, smoothing=on)
        self.state.smoothing = on
        self.inference.update_pipeline(smoothing=on)

    def _on_draw_options(self) -> None:
        self.state.show_boxes, self.state.show_ids = self.boxes_check.isChecked(), self.ids_check.isChecked()
        self.inference.set_draw(show_boxes=self.state.show_boxes, show_ids=self.state.show_ids)

    # --- frames --------------------------------------------------------------------------------------
    def _on_frame_ready(self) -> None:
        wait_s = self._last_paint_s + 1.0 / MAX_PAINT_HZ - time.monotonic()
        if wait_s > 0:  # painted a moment ago: paint the newest frame when the interval is over
            if not self._paint_timer.isActive():
                self._paint_timer.start(max(1, int(wait_s * 1000)))
            return
        rendered = self.inference.display.take(0.0)
        if rendered is None:  # an earlier call already painted the newest frame
            return
        self._last_paint_s = time.monotonic()
        self.last_rendered = rendered
        self.view.show_frame(rendered.image)
        self.frames_shown += 1
        people = len(rendered.result.poses)
        self.fps_label.setText("FPS –" if rendered.fps is None else f"FPS {rendered.fps:.1f}")
        self.people_label.setText(f"People {people}")
        self.latency_label.setText(" · ".join(f"{k} {v:.0f} ms" for k, v in rendered.times_ms.items()))
        if self.progress.isVisible():
            self.progress.setValue(min(self.progress.maximum(), rendered.result.index + 1))
        self.frame_shown.emit(rendered.result.index)

    # --- outputs -------------------------------------------------------------------------------------
    def output_dir(self) -> Path:
        return Path(self.state.output_dir or store_mod.default_output_dir())

    def _show_output_dir(self) -> None:
        self.output_label.setText(f"Saving to: {self.output_dir()}")

    def choose_output_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder", str(self.output_dir()))
        if path:
            self.state.output_dir = path
            self._show_output_dir()

    def _output_path(self, stem: str, suffix: str) -> Path:
        """A new file in the output folder (created if needed), reserved so that another window writing to
        the same folder in the same second gets another name (``_1``, ``_2``...); OutputError if impossible."""
        source = Path(str(self._capture.source)).stem if self._capture and not isinstance(
            self._capture.source, int) else "camera"
        return unique_path(self.output_dir(), f"{source}_{stem}_{time.strftime('%Y%m%d_%H%M%S')}", suffix)

    @staticmethod
    def _discard(path: Path | None) -> None:
        """Remove a reserved output name that stayed empty because writing could not start."""
        if path is not None and path.is_file() and path.stat().st_size == 0:
            path.unlink(missing_ok=True)

    def start_recording(self, path: str | Path | None = None) -> bool:
        """Record what is shown (overlay included) to mp4 at the source fps; False with a status message
        when there is no source or the file cannot be written."""
        if self.source_info is None:
            self.show_error("open a camera or a video before recording")
            self._set_checked(self.record_button, False)
            return False
        reserved = None
        try:
            target = Path(path) if path is not None else (reserved := self._output_path("poses", ".mp4"))
            target = self.inference.start_recording(target, self.source_info.fps, self.source_info.size)
        except LpnError as err:
            self._discard(reserved)
            self.show_error(str(err))
            self._set_checked(self.record_button, False)
            return False
        self._set_output_button(self.record_button, True)
        self.statusBar().showMessage(f"Recording to {target} at {self.source_info.fps:.1f} fps")
        return True

    def stop_recording(self) -> Path | None:
        done = self.inference.stop_recording()
        self._set_output_button(self.record_button, False)
        if done is None:
            return None
        path, frames = done
        self.statusBar().showMessage(f"Saved {frames} frames to {path}")
        return path

    def _on_record_toggled(self, on: bool) -> None:
        if on and not self.inference.recording:
            self.start_recording()
        elif not on and self.inference.recording:
            self.stop_recording()

    def _on_inference_failed(self, message: str) -> None:
        """Show the error; an output the worker had to stop (disk full...) releases its button."""
        self.show_error(message)
        if not self.inference.recording and self.record_button.isChecked():
            self._set_output_button(self.record_button, False)
        if not self.inference.exporting and self.json_button.isChecked():
            self._set_output_button(self.json_button, False)

    def start_json(self, path: str | Path | None = None) -> bool:
        reserved = None
        try:
            target = Path(path) if path is not None else (reserved := self._output_path("keypoints", ".json"))
            target = self.inference.start_json(target, self._json_meta())
        except LpnError as err:
            self._discard(reserved)
            self.show_error(str(err))
            self._set_checked(self.json_button, False)
            return False
        self._set_output_button(self.json_button, True)
        self.statusBar().showMessage(f"Exporting keypoints of every processed frame to {target}")
        return True

    def _json_meta(self) -> dict:
        """The same header as the CLI's JSON (lpn_core.stream.json_header), from what the window knows."""
        info = self.source_info
        untrained = self.settings.weights == "untrained" or bool(self.last_rendered and self.last_rendered.untrained)
        return json_header(self.settings, model=self._running_model or self.settings.model, untrained=untrained,
                           detector=self.settings.detector, source=info.name if info else None,
                           fps=info.fps if info else None, size=info.size if info else None,
                           weights_label=self._weights_label or None,
                           precision=BACKEND_PRECISION.get(self._running_name))

    def stop_json(self) -> Path | None:
        path = self.inference.stop_json()
        self._set_output_button(self.json_button, False)
        if path is not None:
            self.statusBar().showMessage(f"Saved keypoints to {path}")
        return path

    def _on_json_toggled(self, on: bool) -> None:
        if on and not self.inference.exporting:
            self.start_json()
        elif not on and self.inference.exporting:
            self.stop_json()

    def save_snapshot(self, path: str | Path | None = None) -> Path | None:
        """The frame on screen, overlay included, as PNG."""
        if self.last_rendered is None:
            self.show_error("no frame to save yet")
            return None
        reserved = None
        try:
            target = Path(path) if path is not None else (reserved := self._output_path("snapshot", ".png"))
            ok = cv2.imwrite(str(target), self.last_rendered.image)
        except (LpnError, cv2.error) as err:
            self._discard(reserved)
            self.show_error(str(err).strip().splitlines()[-1])
            return None
        if not ok:
            self._discard(reserved)
            self.show_error(f"cannot write {target}: check that the folder exists and is writable")
            return None
        self.statusBar().showMessage(f"Saved snapshot {target}")
        return target

    @staticmethod
    def _set_checked(button: QPushButton, on: bool) -> None:
        button.blockSignals(True)
        button.setChecked(on)
        button.blockSignals(False)

    def _set_output_button(self, button: QPushButton, on: bool) -> None:
        """Check state and label of the record / JSON button together, without re-triggering it."""
        self._set_checked(button, on)
        idle, active = OUTPUT_LABELS["record" if button is self.record_button else "json"]
        button.setText(active if on else idle)

    # --- errors and closing --------------------------------------------------------------------------
    def show_warning(self, message: str) -> None:
        """One sentence in the status bar; nothing stops."""
        self.statusBar().showMessage(f"Warning: {message.strip().splitlines()[0] if message.strip() else ''}")

    def show_error(self, message: str) -> None:
        """One sentence in the status bar; the app keeps running."""
        message = message.strip().splitlines()[0] if message.strip() else "unknown error"
        self.last_error = message
        self.errors.append(message)
        self.statusBar().showMessage(f"Error: {message}")

    @property
    def threads(self) -> list:
        """Every QThread this window started (tests assert they are finished after close)."""
        return [self.inference, *self._old_captures, *([self._capture] if self._capture else [])]

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt name)
        """Stop capture, then inference (finishing the frame in hand), then finalize the outputs."""
        if not self._closed:
            self._closed = True
            self._save_settings()
            self._stop_capture()
            self.inference.stop()
            self.inference.quit()
            if not self.inference.wait(JOIN_MS + 5000):
                self.show_error("the inference thread did not stop in time")
            self.inference.close_outputs()
            self.loader.cancel()  # a model still building is joined by run_gui once the window is gone
        super().closeEvent(event)

    def _save_settings(self) -> None:
        self._store.setValue("window/geometry", self.saveGeometry())
        store_mod.save_state(self._store, self.state)


def run_gui(settings: PipelineSettings, source: str | int | None = None) -> int:
    """Open the window on ``source`` (camera index or video path; None: the last one used). Returns the
    exit code for main.py."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(store_mod.ORGANIZATION)
    app.setApplicationName(store_mod.APPLICATION)
    window = MainWindow(settings, source)
    window.show()
    # Ctrl-C in the terminal closes the window cleanly (recording finalized) instead of being ignored
    # while Qt's event loop runs: the timer gives Python a chance to run its signal handler.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)
    ticker.start(200)
    code = app.exec()
    window.loader.join(300.0)  # let a model build in flight finish: exiting under torch/ORT aborts
    return code
