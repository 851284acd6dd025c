"""The main window: the live view, the control panels, the analysis dock and the status bar. It only paints
and forwards requests; capture, inference, model loading and file writing run in the workers (docs/APP.md).

    ┌──────────────────────────────────────┬──────────────┐
    │ FrameView (central)                   │ Source       │
    │                                       │ Model        │
    ├──────────────────────────────────────┤ Show         │
    │ AnalysisDock (bottom, optional)       │ Output       │
    ├──────────────────────────────────────┴──────────────┤
    │ StatusBar: message │ model │ FPS │ people │ stage ms   │
    └───────────────────────────────────────────────────────┘
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from PyQt6.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PyQt6.QtWidgets import QApplication, QDockWidget, QMainWindow, QScrollArea, QVBoxLayout, QWidget

from lpn_core.pipeline import PipelineSettings
from lpn_core.quantize import BACKEND_PRECISION
from lpn_core.stream import json_header

from . import settings as store_mod
from .analysis import AnalysisDock
from .capture import CaptureWorker, FrameChannel, SourceInfo
from .controls import BACKENDS, RUNNING, ModelBox, ShowBox, add_shortcut, display_name
from .loader import LoadedModel, ModelLoader
from .outputs import OutputContext, OutputPanel
from .report import one_line
from .source_box import SourceBox
from .status import StatusBar
from .view import FrameView
from .workers import DrawOptions, InferenceWorker

JOIN_MS = 3000
MAX_PAINT_HZ = 30  # frames processed faster than this are counted, recorded and exported, but not all painted
PANEL_WIDTH = 310
ANALYSIS_HEIGHT = 230  # the dock's first height: the frame keeps most of a 1280x800 window


def parse_source(text: str) -> str | int:
    """A remembered source: '0' is camera 0, anything else a path."""
    return int(text) if text.strip().isdigit() else text


class MainWindow(QMainWindow):
    """Live frame with skeletons, FPS and per-stage latency; source, model, display and output controls."""

    frame_shown = pyqtSignal(int)  # index of the frame just painted

    def __init__(self, settings: PipelineSettings | None = None, source: str | int | None = None,
                 store: QSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("LPN Pose")
        self._store = store if store is not None else store_mod.open_store()
        self._cli = settings or PipelineSettings()
        self.state = store_mod.merge(self._cli, store_mod.load_state(self._store), PipelineSettings())
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
                                                                    self.state.show_ids, self.state.show_hud))
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

    @property
    def settings(self) -> PipelineSettings:
        """The pipeline settings the window's choices make (the command line's, with the window's state)."""
        return store_mod.pipeline_settings(self._cli, self.state)

    # --- layout ------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.view = FrameView()
        self.view.clicked.connect(self._on_view_clicked)
        self.setCentralWidget(self.view)
        self.source_box = SourceBox(self.state)
        self.source_box.open_requested.connect(self.open_source)
        self.source_box.process_all_changed.connect(lambda on: self._steer_capture("set_process_all", on))
        self.source_box.loop_changed.connect(lambda on: self._steer_capture("set_loop", on))
        self.source_box.pause_changed.connect(lambda on: self._steer_capture("set_paused", on))
        self.source_box.step_requested.connect(lambda: self._steer_capture("step"))
        self.model_box = ModelBox(self.state)
        self.model_box.model_requested.connect(self._request_model)
        self.model_box.pipeline_changed.connect(lambda changes: self.inference.update_pipeline(**changes))
        self.model_box.threshold_changed.connect(self._on_threshold)
        self.show_box = ShowBox(self.state)
        self.show_box.draw_changed.connect(lambda changes: self.inference.set_draw(**changes))
        self.outputs = OutputPanel(self.inference, self.state, self._output_context)
        self.outputs.message.connect(lambda text: self.statusBar().showMessage(text))
        self.outputs.error.connect(self.show_error)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea,
                           self._panel_dock(self.source_box, self.model_box, self.show_box, self.outputs))
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.analysis = AnalysisDock(self.state.kpt_thr)
        self.analysis.visibilityChanged.connect(self._on_analysis_visibility)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.analysis)
        self.resizeDocks([self.analysis], [ANALYSIS_HEIGHT], Qt.Orientation.Vertical)
        self.analysis.setVisible(self.state.show_analysis)
        self.show_box.analysis_toggled.connect(self.analysis.setVisible)
        self.setStatusBar(StatusBar())
        self.model_label = self.statusBar().model_label
        for part in (self.model_box, self.show_box, self.outputs):
            part.add_shortcuts(self)
        for keys, slot in (("Space", self.source_box.toggle_pause), (".", self.source_box.step),
                           ("Ctrl+O", self.source_box.choose_video), ("Ctrl+K", self.source_box.camera_button.click),
                           ("Ctrl+Q", self.close)):
            add_shortcut(self, keys, slot)
        self.setAcceptDrops(True)
        self.resize(1280, 800)

    @staticmethod
    def _panel_dock(*panels: QWidget) -> QDockWidget:
        """The control panels in a fixed, title-less right-hand dock, scrolling when the window is short."""
        body = QWidget()
        column = QVBoxLayout(body)
        for panel in panels:
            column.addWidget(panel)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(body)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(PANEL_WIDTH)
        dock = QDockWidget("Controls")
        dock.setObjectName("controls")
        dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        dock.setTitleBarWidget(QWidget())
        dock.setWidget(scroll)
        return dock

    def _on_analysis_visibility(self, visible: bool) -> None:
        if not self._closed and not self.isMinimized() and self.isVisible():
            self.state.show_analysis = visible
            self.show_box.analysis_check.setChecked(visible)

    # --- sources -----------------------------------------------------------------------------------
    def open_source(self, source: str | int) -> None:
        """Stop the current source (finalizing a recording of it) and start capturing ``source``."""
        self._stop_capture()
        self.outputs.stop("record")
        self._channel.clear()
        self.source_info = None
        self.source_box.source_closed()
        self._capture_count += 1
        what = f"camera {source}" if isinstance(source, int) else Path(str(source)).name
        self.view.show_message(f"Opening {what}…", clear=True)
        capture = CaptureWorker(source, self._channel, ident=self._capture_count,
                                process_all=self.state.process_all, loop=self.state.loop)
        capture.opened.connect(self._on_source_opened)
        capture.ended.connect(self._on_source_ended)
        capture.failed.connect(self._on_source_failed)
        capture.warned.connect(self.show_warning)
        self._capture = capture
        if isinstance(source, int):
            self.source_box.select_camera(source)
        capture.start()

    def _steer_capture(self, method: str, *args: object) -> None:
        if self._capture is not None:
            getattr(self._capture, method)(*args)

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
        self.source_box.source_opened(info)
        if not self.inference.has_pipeline or not self._running_model:
            self.view.show_message(f"Loading {display_name(self.state.model)}…")

    def _on_source_ended(self, frames: int) -> None:
        if self._from_current_capture() and not self.state.loop:
            self.statusBar().showMessage(f"End of video: {frames} frames read. Open it again to replay.")

    def _on_source_failed(self, message: str) -> None:
        if not self._from_current_capture():
            return
        if self.source_info is not None:  # it failed mid-run (camera unplugged...): keep what was made of it
            kept = self.outputs.finish_all()
            message += f"; kept {' and '.join(kept)}" if kept else ""
            message += "; open it again to continue"
            self.source_info = None
            self.source_box.source_closed()
        self.show_error(message)
        if self.frames_shown == 0 or self.source_info is None:
            self.view.show_message("No source: " + message, clear=True)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt name)
        if dropped_file(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt name)
        """A file dropped on the window opens as the source (an unreadable one says why, as Open does)."""
        path = dropped_file(event)
        if path is not None:
            event.acceptProposedAction()
            self.state.video_dir = str(Path(path).parent)
            self.open_source(path)

    # --- models --------------------------------------------------------------------------------------
    def _request_model(self) -> None:
        model, backend = self.state.model, self.state.backend
        self.loader.request(self.settings, build_pipeline=not self.inference.has_pipeline)
        keeps = f"; {display_name(self._running_model)} keeps running" if self._running_model else ""
        self.statusBar().showMessage(f"Loading {display_name(model)} ({BACKENDS[backend]}){keeps}…")

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
        self._running_model, self._running_name = model, backend  # onnx (fp32), onnx-int8 or torch
        self._running_backend = "torch" if backend == "torch" else "onnx"  # the Backend dropdown's key
        self._weights_label = weights_label
        self.model_label.setText(self._model_text(model, backend))
        if self.statusBar().currentMessage().startswith("Loading"):  # said; the model section now shows it
            self.statusBar().clearMessage()
        if self.source_info is None and self._capture is None:
            self.view.show_message("Open a camera or a video file")

    def _on_model_failed(self, message: str, request: int) -> None:
        if request != self.loader.latest or self._closed:
            return
        if not self._running_model:
            self.model_label.setText("No model")
            self.view.show_message("No model loaded: " + message)
        else:  # the old model keeps running: put the dropdowns back to it
            self.model_box.show_running(self._running_model, self._running_backend)
            self.model_label.setText(self._model_text(self._running_model, self._running_name))
        self.show_error(message)

    # --- frames --------------------------------------------------------------------------------------
    def _on_threshold(self, thr: float) -> None:
        self.inference.set_draw(kpt_thr=thr)
        self.analysis.threshold = thr

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
        self.statusBar().show_numbers(rendered.fps, len(rendered.result.poses), rendered.times_ms)
        self.source_box.show_progress(rendered.result.index)
        self.analysis.add(rendered)
        self.frame_shown.emit(rendered.result.index)

    def _on_view_clicked(self, x: float, y: float) -> None:
        """A click on a person follows them in the analysis dock (opening it)."""
        if self.last_rendered is not None and self.analysis.pick_at(self.last_rendered.result.poses, x, y):
            self.show_box.analysis_check.setChecked(True)

    # --- outputs -------------------------------------------------------------------------------------
    def _output_context(self) -> OutputContext:
        capture = self._capture
        stem = Path(str(capture.source)).stem if capture and not isinstance(capture.source, int) else "camera"
        return OutputContext(self.source_info, stem, self._json_meta(),
                             self.last_rendered.image if self.last_rendered is not None else None)

    def _json_meta(self) -> dict:
        """The same header as the CLI's JSON (lpn_core.stream.json_header), from what the window knows."""
        info, settings = self.source_info, self.settings
        untrained = settings.weights == "untrained" or bool(self.last_rendered and self.last_rendered.untrained)
        return json_header(settings, model=self._running_model or settings.model, untrained=untrained,
                           detector=settings.detector, source=info.name if info else None,
                           fps=info.fps if info else None, size=info.size if info else None,
                           weights_label=self._weights_label or None,
                           precision=BACKEND_PRECISION.get(self._running_name))

    def _on_inference_failed(self, message: str) -> None:
        """Show the error; an output the worker had to stop (disk full...) releases its button."""
        self.show_error(message)
        self.outputs.sync()

    # --- errors and closing --------------------------------------------------------------------------
    def show_warning(self, message: str) -> None:
        """One sentence in the status bar; nothing stops."""
        self.statusBar().showMessage(f"Warning: {one_line(message)}")

    def show_error(self, message: str) -> None:
        """One sentence in the status bar; the app keeps running."""
        message = one_line(message, "unknown error")
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
            self._save_settings()
            self._closed = True
            self._stop_capture()
            self.inference.stop()
            self.inference.quit()
            if not self.inference.wait(JOIN_MS + 5000):
                self.show_error("the inference thread did not stop in time")
            self.outputs.finish_all()
            self.loader.cancel()  # a model still building is joined by run_gui once the window is gone
        super().closeEvent(event)

    def _save_settings(self) -> None:
        self._store.setValue("window/geometry", self.saveGeometry())
        store_mod.save_state(self._store, self.state)


def dropped_file(event: QDragEnterEvent | QDropEvent) -> str | None:
    """The first local file of a drag, or None (text, web links, several windows' worth of nothing)."""
    urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
    paths = [url.toLocalFile() for url in urls if url.isLocalFile()]
    return next((path for path in paths if Path(path).is_file()), None)


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
