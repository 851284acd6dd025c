"""The capture thread: reads a camera or a video file and keeps only the newest frame for inference.

    CaptureWorker (QThread)   FrameSource.read() -> FrameChannel (one slot, latest frame wins)

Control calls (stop, pause, step, process-all, loop) come from the GUI thread and only set state under a
lock; the loop picks it up between frames.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import QThread, pyqtSignal

from lpn_core.errors import LpnError
from lpn_core.stream import LatestFrame, open_source

from .report import unexpected


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

