"""The inference thread: takes the newest captured frame, runs the pipeline, draws, writes the outputs.

    CaptureWorker (capture.py)  FrameSource -> FrameChannel (one slot, latest frame wins)
    InferenceWorker (here)      FrameChannel -> Pipeline.process -> draw -> outputs -> display slot
    ModelLoader (loader.py)     builds the next model while this one keeps running

Control calls (swap, update, draw options, outputs) come from the GUI thread and only set state under a
lock; the loop applies them between two frames. Results reach the GUI through signals and a one-slot
display mailbox, so a busy GUI skips to the newest frame instead of queueing images.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np
from PyQt6.QtCore import QThread, pyqtSignal

from lpn_core.draw import draw_poses, draw_stats, draw_untrained_banner
from lpn_core.errors import LpnError
from lpn_core.estimator import PoseEstimator
from lpn_core.pipeline import Pipeline, PipelineSettings
from lpn_core.stream import LatestFrame
from lpn_core.timing import FpsMeter
from lpn_core.types import FrameResult

from .capture import FrameChannel, FramePacket
from .outputs import FrameWriter
from .report import unexpected


@dataclass(frozen=True, slots=True)
class Rendered:
    """One processed frame for the GUI: the result, the overlay image and the numbers shown beside it."""

    result: FrameResult
    image: np.ndarray     # overlay, (H, W, 3) uint8 BGR; read-only
    fps: float | None
    times_ms: dict[str, float]
    model: str
    backend: str
    untrained: bool


@dataclass(slots=True)
class DrawOptions:
    """What the overlay shows; the threshold starts at the pipeline's."""

    kpt_thr: float = PipelineSettings.kpt_thr
    show_boxes: bool = True
    show_ids: bool = True
    show_hud: bool = True  # the FPS / latency / weights readout in the corner


@dataclass(slots=True)
class _Requests:
    """Changes asked for by the GUI, applied by the inference thread between two frames."""

    pipeline: Pipeline | None = None
    estimator: PoseEstimator | None = None
    updates: dict = field(default_factory=dict)
    redraw: bool = False


class InferenceWorker(QThread):
    """Owns the Pipeline: takes the newest frame, runs detector + LPN, draws, writes outputs, hands to the GUI.

    The GUI gets a parameterless ``frame_ready`` and takes the newest Rendered from ``display``: if the GUI
    ever paints slower than frames come, it skips to the latest instead of queueing images.
    """

    frame_ready = pyqtSignal()
    model_ready = pyqtSignal(str, str, str)   # model, backend, weights label now running
    failed = pyqtSignal(str)
    warned = pyqtSignal(str)                  # one line, e.g. once per recording: frames of another size resized

    def __init__(self, channel: FrameChannel, draw: DrawOptions | None = None) -> None:
        super().__init__()
        self._channel = channel
        self.display = LatestFrame()
        self._lock = threading.Lock()           # guards _requests and _draw
        self._out_lock = threading.Lock()       # guards _writers (writes vs attach/detach)
        self._stop = threading.Event()
        self._requests = _Requests()
        self._draw = draw or DrawOptions()
        self._pipeline: Pipeline | None = None
        self._writers: dict[str, FrameWriter] = {}
        self._fps = FpsMeter(window=30)
        self._stream: tuple[int, int] | None = None
        self._last: FrameResult | None = None
        self._last_error = ""
        self.frames_processed = 0

    # --- control, from the GUI thread -------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def has_pipeline(self) -> bool:
        with self._lock:
            return self._pipeline is not None or self._requests.pipeline is not None

    def set_pipeline(self, pipeline: Pipeline) -> None:
        with self._lock:
            self._requests.pipeline, self._requests.estimator = pipeline, None

    def swap_estimator(self, estimator: PoseEstimator) -> None:
        """Swap in a model built elsewhere; the current one keeps running until the next frame boundary."""
        with self._lock:
            if self._requests.pipeline is not None:  # a whole new pipeline is still waiting: update it
                self._requests.pipeline.swap_estimator(estimator)
            else:
                self._requests.estimator = estimator

    def update_pipeline(self, **changes) -> None:
        """Cheap settings (det_every, kpt_thr, smoothing, ...): Pipeline.update between frames."""
        with self._lock:
            self._requests.updates.update(changes)

    def set_draw(self, **changes) -> None:
        """DrawOptions fields; redraws the last frame (visible while paused)."""
        with self._lock:
            self._draw = replace(self._draw, **changes)
            self._requests.redraw = True

    def attach(self, key: str, writer: FrameWriter) -> None:
        """Call ``writer`` once per processed frame from the next frame on (replacing another under ``key``)."""
        with self._out_lock:
            old, self._writers[key] = self._writers.get(key), writer
        if old is not None:
            old.close()

    def detach(self, key: str) -> FrameWriter | None:
        """Stop calling the writer under ``key`` and return it (the caller closes it)."""
        with self._out_lock:
            return self._writers.pop(key, None)

    def detach_all(self) -> list[FrameWriter]:
        with self._out_lock:
            writers, self._writers = list(self._writers.values()), {}
        return writers

    def writing(self, key: str) -> bool:
        return key in self._writers

    # --- thread ----------------------------------------------------------------------------------
    def run(self) -> None:
        while not self._stop.is_set():
            try:
                redraw = self._apply_requests()
                if self._pipeline is None:
                    self._stop.wait(0.05)
                    continue
                packet = self._channel.take(0.05)
                redraw = self._apply_requests() or redraw  # what arrived while waiting applies to this frame
                if packet is not None:
                    self._process(packet)
                elif redraw and self._last is not None:
                    self._render(self._last, self._last.times_ms, count=False)
            except LpnError as err:
                self._report(str(err))
            except Exception as err:  # noqa: BLE001 (see unexpected())
                self._report(unexpected(err))
                self._stop.wait(0.2)  # a bug that repeats every frame must not spin a core

    def _report(self, message: str) -> None:
        if message != self._last_error:  # a broken frame repeats; say it once
            self._last_error = message
            self.failed.emit(message)

    def _apply_requests(self) -> bool:
        with self._lock:
            req, self._requests = self._requests, _Requests()
        if req.pipeline is not None:
            self._pipeline, self._stream = req.pipeline, None
            self._channel.consumer_ready.set()
            self._fps.reset()
            self._emit_model_ready(req.pipeline.estimator)
        if req.estimator is not None and self._pipeline is not None:
            self._pipeline.swap_estimator(req.estimator)
            self._fps.reset()
            self._emit_model_ready(req.estimator)
        if req.updates and self._pipeline is not None:
            self._pipeline.update(**req.updates)
        return req.redraw

    def _emit_model_ready(self, estimator: PoseEstimator) -> None:
        self.model_ready.emit(estimator.model_name, self._backend_name(), estimator.weights_label)

    def _backend_name(self) -> str:
        return getattr(self._pipeline.estimator.backend, "name", "") if self._pipeline else ""

    def _process(self, packet: FramePacket) -> None:
        if packet.stream != self._stream:  # new source, or a file starting over: forget tracks
            self._pipeline.reset()
            if self._stream is None or packet.stream[0] != self._stream[0]:  # a loop keeps the FPS
                self._fps.reset()
            self._stream = packet.stream
        result = self._pipeline.process(packet.frame, packet.index, packet.timestamp_s)
        self._last_error = ""
        self._fps.tick()
        self.frames_processed += 1
        self._last = result
        self._render(result, dict(result.times_ms), count=True, time_s=packet.timestamp_s)

    def _render(self, result: FrameResult, times_ms: dict[str, float], count: bool,
                time_s: float | None = None) -> None:
        with self._lock:
            opts = self._draw
        start = time.perf_counter()
        image = draw_poses(result.frame, result.poses, kpt_thr=opts.kpt_thr, show_boxes=opts.show_boxes,
                           show_ids=opts.show_ids)
        times_ms["draw"] = (time.perf_counter() - start) * 1e3
        estimator = self._pipeline.estimator
        if opts.show_hud:
            draw_stats(image, self._fps.fps, times_ms, len(result.poses), untrained=estimator.untrained,
                       weights_label=f"{estimator.model_name} {estimator.weights_label}")
        elif estimator.untrained:
            draw_untrained_banner(image)  # the warning stays, whatever the HUD shows
        if count:
            self._write_outputs(image, result, time_s)
        self.display.put(Rendered(result, image, self._fps.fps, times_ms, estimator.model_name,
                                  self._backend_name(), estimator.untrained))
        self.frame_ready.emit()

    def _write_outputs(self, image: np.ndarray, result: FrameResult, time_s: float | None) -> None:
        """Every active writer, once; one that fails (a full disk...) is finalized, dropped and reported."""
        with self._out_lock:
            for key, writer in list(self._writers.items()):
                try:
                    note = writer.write(image, result, time_s)
                except (LpnError, OSError) as err:
                    del self._writers[key]
                    self.failed.emit(writer.close(err))
                    continue
                if note:
                    self.warned.emit(note)
