"""The app's threads. The GUI thread only paints; everything else happens here (STYLE §11).

    CaptureWorker (QThread)   FrameSource.read() -> FrameChannel (one slot, latest frame wins)
    InferenceWorker (QThread) FrameChannel -> Pipeline.process -> draw -> recording / JSON -> display slot
    ModelLoader (thread)      build_estimator (+ Pipeline the first time) while the old model keeps running

Control calls (stop, pause, step, swap, update, recording) come from the GUI thread and only set state
under a lock; the worker loops pick it up between frames. Results go to the GUI through signals.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QObject, QThread, pyqtSignal

from lpn_core.draw import draw_poses, draw_stats
from lpn_core.errors import LpnError
from lpn_core.estimator import PoseEstimator, build_estimator
from lpn_core.pipeline import Pipeline, PipelineSettings
from lpn_core.stream import JsonWriter, LatestFrame, VideoSink, open_source
from lpn_core.timing import FpsMeter
from lpn_core.types import FrameResult

log = logging.getLogger(__name__)

WARMUP_FRAME = np.zeros((360, 640, 3), np.uint8)
WARMUP_BOX = np.array([[0, 0, 192, 256]], np.float32)
MAX_REPEAT_S = 2.0  # a recording fills at most this much of a gap (a stall) by repeating the last frame


def unexpected(err: BaseException) -> str:
    """One line for an error that is not an LpnError (a bug): the app reports it instead of aborting.

    An exception escaping QThread.run would make PyQt6 abort the whole process, recording included.
    """
    log.exception("unexpected error in a worker thread", exc_info=err)
    return f"unexpected error ({type(err).__name__}: {err}); the log has details"


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the capture thread learned when the source opened."""

    name: str
    fps: float
    frame_count: int | None
    size: tuple[int, int]  # (W, H)
    is_camera: bool


@dataclass(frozen=True, slots=True)
class FramePacket:
    """One captured frame on its way to inference. ``frame`` is read-only once sent."""

    frame: np.ndarray
    index: int            # frame number in the stream (counts frames dropped in live mode too)
    timestamp_s: float    # media time for files, wall time since opening for cameras
    stream: tuple[int, int]  # (capture id, loop number): a new value means "new source: reset tracks"


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


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model built in the background: the estimator, plus a whole Pipeline when none existed yet."""

    estimator: PoseEstimator
    pipeline: Pipeline | None
    request: int


class FrameChannel:
    """Capture -> inference hand-off: lpn_core's one-slot LatestFrame, plus an "empty" flag so that a file
    processed frame by frame waits for the slot instead of overwriting it (nothing dropped)."""

    def __init__(self) -> None:
        self._latest = LatestFrame()
        self._empty = threading.Event()
        self._empty.set()
        self.consumer_ready = threading.Event()  # set while inference has a model: files wait for it

    def put(self, packet: FramePacket) -> None:
        self._empty.clear()
        self._latest.put(packet)

    def take(self, timeout: float = 0.05) -> FramePacket | None:
        packet = self._latest.take(timeout)
        if packet is not None:
            self._empty.set()
        return packet

    @property
    def empty(self) -> threading.Event:
        """Set when the slot is empty (inference took the last frame)."""
        return self._empty

    def clear(self) -> None:
        self.take(0.0)
        self._empty.set()


class CaptureWorker(QThread):
    """Reads a camera or a video file in its own thread and keeps only the newest frame in the channel.

    Files play at their own fps (paced here), or, with ``process_all``, as fast as inference takes them
    with no frame dropped. Cameras are read as fast as they deliver (FrameSource sets a 1-frame buffer).
    """

    opened = pyqtSignal(object)   # SourceInfo
    ended = pyqtSignal(int)       # frames read, at the end of a file
    failed = pyqtSignal(str)      # one line
    warned = pyqtSignal(str)      # one line, once per source: unusable frames were skipped

    def __init__(self, source: str | int, channel: FrameChannel, ident: int = 0, process_all: bool = False,
                 loop: bool = False, paused: bool = False) -> None:
        super().__init__()
        self.source, self.ident = source, ident
        self._channel = channel
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._process_all, self._loop, self._paused, self._steps = process_all, loop, paused, 0
        self.info: SourceInfo | None = None
        self.frames_read = 0

    # --- control, from the GUI thread -------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused, self._steps = paused, 0

    def step(self) -> None:
        """While paused: read exactly one more frame."""
        with self._lock:
            self._steps += 1

    def set_process_all(self, on: bool) -> None:
        with self._lock:
            self._process_all = on

    def set_loop(self, on: bool) -> None:
        with self._lock:
            self._loop = on

    # --- thread ----------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            loop_number = 0
            while not self._stop.is_set():
                with open_source(self.source) as src:
                    self.info = SourceInfo(src.name, float(src.fps or 0.0), src.frame_count, tuple(src.size),
                                           bool(src.is_camera))
                    if loop_number == 0:
                        self.opened.emit(self.info)
                    at_end = self._pump(src, (self.ident, loop_number))
                with self._lock:
                    again = self._loop and at_end and not self.info.is_camera
                if not again:
                    break
                loop_number += 1
        except LpnError as err:
            self.failed.emit(str(err))
        except Exception as err:  # noqa: BLE001 (see unexpected())
            self.failed.emit(unexpected(err))

    def _pump(self, src, stream: tuple[int, int]) -> bool:
        """Read until stopped (False) or the end of the file (True)."""
        fps = self.info.fps if self.info.fps > 0 else 30.0
        opened_at = time.monotonic()
        next_due = opened_at
        index, warned = 0, False
        while not self._stop.is_set():
            with self._lock:
                paused, process_all = self._paused, self._process_all
                stepping = paused and self._steps > 0
                if stepping:
                    self._steps -= 1
            if paused and not stepping:
                self._stop.wait(0.02)
                next_due = time.monotonic()  # resume without a burst of catch-up frames
                continue
            if not src.is_camera and not self._channel.consumer_ready.is_set():
                if not self._wait(self._channel.consumer_ready):  # a file waits for the model
                    return False
                next_due = time.monotonic()
            if process_all and not src.is_camera and not self._wait(self._channel.empty):
                return False
            frame = src.read()
            if src.skipped_frames and not warned:
                warned = True
                self.warned.emit(src.skipped_note())
            if frame is None:
                if src.is_camera:
                    raise LpnError(f"{src.name} stopped delivering frames (unplugged?)")
                self.ended.emit(index)
                return True
            timestamp = time.monotonic() - opened_at if src.is_camera else index / fps
            self._channel.put(FramePacket(frame, index, timestamp, stream))
            index += 1
            self.frames_read += 1
            if not src.is_camera and not process_all:  # play a file at its own speed
                next_due += 1.0 / fps
                delay = next_due - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -1.0:  # decoding fell behind by a second: do not try to catch up
                    next_due = time.monotonic()
        return False

    def _wait(self, event: threading.Event) -> bool:
        """Wait for ``event`` while staying stoppable; False when asked to stop."""
        if event.is_set():
            return True
        while not self._stop.is_set():
            if event.wait(0.05):
                return True
        return False


class Recording:
    """A VideoSink at the source fps that keeps real time: when frames were dropped (live mode, a slow
    model, a camera delivering slower than it claims), the last drawn frame is repeated up to each new
    frame's timestamp, so the file plays at the speed things happened. A writer fed fewer frames than its
    fps would play fast (ANCHORS §3 item 5)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self.sink = VideoSink(self.path, fps=fps, size=size)  # OutputError when unwritable
        self.fps = self.sink.fps
        self._start_s: float | None = None

    def write(self, image: np.ndarray, time_s: float) -> None:
        """``time_s``: the frame's media time (files) or capture time (cameras), in seconds."""
        if self._start_s is None or time_s < self._start_s:  # first frame, or a file starting over
            self._start_s = time_s - self.sink.frames_written / self.fps
        due = round((time_s - self._start_s) * self.fps) + 1  # frames the file should hold after this one
        cap = int(self.fps * MAX_REPEAT_S)
        if due - self.sink.frames_written > cap:  # a long stall: fill part of it, then carry on from here
            self._start_s += (due - self.sink.frames_written - cap) / self.fps
            due = self.sink.frames_written + cap
        for _ in range(max(1, due - self.sink.frames_written)):
            self.sink.write(image)

    @property
    def frames_written(self) -> int:
        return self.sink.frames_written

    def close(self) -> None:
        self.sink.close()


@dataclass(slots=True)
class DrawOptions:
    kpt_thr: float = 0.3
    show_boxes: bool = True
    show_ids: bool = True


@dataclass(slots=True)
class _Requests:
    """Changes asked for by the GUI, applied by the inference thread between two frames."""

    pipeline: Pipeline | None = None
    estimator: PoseEstimator | None = None
    updates: dict = field(default_factory=dict)
    redraw: bool = False


class InferenceWorker(QThread):
    """Owns the Pipeline: takes the newest frame, runs detector + LPN, draws, records, hands to the GUI.

    The GUI gets a parameterless ``frame_ready`` and takes the newest Rendered from ``display``: if the GUI
    ever paints slower than frames come, it skips to the latest instead of queueing images.
    """

    frame_ready = pyqtSignal()
    model_ready = pyqtSignal(str, str, str)   # model, backend, weights label now running
    failed = pyqtSignal(str)
    warned = pyqtSignal(str)                  # one line, once per recording: frames of another size resized

    def __init__(self, channel: FrameChannel, draw: DrawOptions | None = None) -> None:
        super().__init__()
        self._channel = channel
        self.display = LatestFrame()
        self._lock = threading.Lock()           # guards _requests and _draw
        self._out_lock = threading.Lock()       # guards _recording and _json (writes vs start/stop)
        self._stop = threading.Event()
        self._requests = _Requests()
        self._draw = draw or DrawOptions()
        self._pipeline: Pipeline | None = None
        self._recording: Recording | None = None
        self._resize_noted = False
        self._json: JsonWriter | None = None
        self._json_path: Path | None = None
        self._json_size: tuple[int, int] | None = None  # (W, H) in the JSON header
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
        """kpt_thr / show_boxes / show_ids for drawing; redraws the last frame (visible while paused)."""
        with self._lock:
            self._draw = replace(self._draw, **changes)
            self._requests.redraw = True

    def start_recording(self, path: str | Path, fps: float, size: tuple[int, int]) -> Path:
        """Open the sink now (OutputError reaches the caller at once); frames are written by this thread."""
        recording = Recording(Path(path), fps if fps > 0 else 30.0, size)
        with self._out_lock:
            old, self._recording, self._resize_noted = self._recording, recording, False
        if old is not None:
            old.close()
        return recording.path

    def stop_recording(self) -> tuple[Path, int] | None:
        """Finalize the file; returns (path, frames written), or None when not recording."""
        with self._out_lock:
            recording, self._recording = self._recording, None
        if recording is None:
            return None
        recording.close()
        return recording.path, recording.frames_written

    @property
    def recording(self) -> bool:
        return self._recording is not None

    def start_json(self, path: str | Path, meta: dict) -> Path:
        """Write every processed frame's poses to ``path`` (valid JSON whenever it is stopped)."""
        writer = JsonWriter(Path(path), meta)  # OutputError when unwritable
        size = tuple(meta["size"]) if meta.get("size") else None
        with self._out_lock:
            old, self._json, self._json_path, self._json_size = self._json, writer, Path(path), size
        if old is not None:
            old.close()
        return Path(path)

    def stop_json(self) -> Path | None:
        with self._out_lock:
            writer, path, self._json, self._json_path = self._json, self._json_path, None, None
        if writer is None:
            return None
        writer.close(complete=True)
        return path

    @property
    def exporting(self) -> bool:
        return self._json is not None

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
        image = draw_stats(image, self._fps.fps, times_ms, len(result.poses), untrained=estimator.untrained,
                           weights_label=f"{estimator.model_name} {estimator.weights_label}")
        if count:
            self._write_outputs(image, result, time_s)
        self.display.put(Rendered(result, image, self._fps.fps, times_ms, estimator.model_name,
                                  self._backend_name(), estimator.untrained))
        self.frame_ready.emit()

    def _write_outputs(self, image: np.ndarray, result: FrameResult, time_s: float | None) -> None:
        with self._out_lock:
            try:
                if self._recording is not None:
                    self._recording.write(image, result.index / self._recording.fps if time_s is None else time_s)
                    self._note_resize(self._recording.sink)
            except LpnError as err:  # e.g. disk full: keep what was written, stop recording, say so
                recording, self._recording = self._recording, None
                recording.close()
                self.failed.emit(f"{err}; recording stopped, {recording.frames_written} frames kept in "
                                 f"{recording.path}")
            try:
                if self._json is not None:
                    self._json.write(result, time_s, **self._frame_size(result))
            except (LpnError, OSError) as err:  # e.g. disk full: close what was written (valid JSON), stop, say so
                writer, self._json, self._json_path = self._json, None, None
                writer.close(complete=False)
                reason = err if isinstance(err, LpnError) else f"cannot write {writer.path} ({err.strerror or err})"
                self.failed.emit(f"keypoint export stopped: {reason}")

    def _note_resize(self, sink: VideoSink) -> None:
        """Say once per recording that frames of another size (the source changed size) were resized."""
        if sink.resized_frames and not self._resize_noted:
            self._resize_noted = True
            self.warned.emit(sink.resize_note())

    def _frame_size(self, result: FrameResult) -> dict:
        """JSON extra for a frame whose size differs from the one in the header: keypoints are in its pixels."""
        size = (result.frame.shape[1], result.frame.shape[0])
        return {} if self._json_size in (None, size) else {"size": list(size)}

    def close_outputs(self) -> None:
        """Finalize a recording and a JSON export in progress (call after the thread has stopped)."""
        self.stop_recording()
        self.stop_json()


class ModelLoader(QObject):
    """Builds models off the GUI and inference threads; the latest request wins.

    A plain thread per request rather than a QThread: building LPN-152 for ONNX Runtime takes ~15 s
    here; closing the window must not wait for it, nor destroy a running QThread (which aborts the
    process). ``run_gui`` joins builds still in flight after the window has gone, before the
    interpreter exits (a thread killed inside torch/ORT at exit aborts the process). A superseded
    build skips its remaining steps and is dropped.
    """

    loaded = pyqtSignal(object)   # LoadedModel
    failed = pyqtSignal(str, int)  # message, request number

    def __init__(self) -> None:
        super().__init__()
        self._threads: list[threading.Thread] = []
        self._cancelled = threading.Event()
        self.latest = 0

    def request(self, settings: PipelineSettings, build_pipeline: bool) -> int:
        self.latest += 1
        thread = threading.Thread(target=self._build, args=(settings, build_pipeline, self.latest),
                                  name=f"lpn-model-loader-{self.latest}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return self.latest

    @property
    def busy(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def cancel(self) -> None:
        """Skip the remaining steps of builds in flight (the current step still finishes)."""
        self._cancelled.set()

    def join(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for builds in flight; True when none is left."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not self.busy

    def _build(self, settings: PipelineSettings, build_pipeline: bool, request: int) -> None:
        try:
            estimator = build_estimator(settings.model, settings.weights, settings.backend, settings.device,
                                        flip_test=settings.flip_test, threads=settings.threads, spinning=False,
                                        precision=settings.precision)
            if self._cancelled.is_set() or request != self.latest:
                return  # closed or superseded: skip the rest
            estimator(WARMUP_FRAME, WARMUP_BOX)  # first runs allocate; pay that here, not in the live loop
            pipeline = None
            if build_pipeline:
                pipeline = Pipeline(settings, estimator=estimator)
                pipeline.process(WARMUP_FRAME)  # loads and compiles the detector lazily on first call
                pipeline.reset()
            self._emit(self.loaded, LoadedModel(estimator, pipeline, request))
        except LpnError as err:
            self._emit(self.failed, str(err), request)
        except Exception as err:  # noqa: BLE001 (see unexpected())
            self._emit(self.failed, unexpected(err), request)

    @staticmethod
    def _emit(signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the window (and this QObject) closed while the model was building
            pass
