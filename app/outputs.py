"""The Output panel and the writers behind it: MP4 recording, keypoint JSON, CSV table, PNG snapshot.

The panel (GUI thread) opens a writer, so that an unwritable path fails at once with one line, and hands
it to the inference thread, which calls every active writer once per processed frame
(``InferenceWorker.attach``). Recording, JSON and CSV share one start / stop / toggle, parametrised by an
``OutputKind``; each writer says in its own words what it started and what it kept.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import cv2
import numpy as np
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QFileDialog, QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from lpn_core.csv_export import CsvWriter
from lpn_core.errors import LpnError
from lpn_core.stream import JsonWriter, VideoSink, unique_path
from lpn_core.types import FrameResult

from .capture import SourceInfo
from .controls import add_shortcut
from .settings import GuiState, default_output_dir

if TYPE_CHECKING:
    from .workers import InferenceWorker

MAX_REPEAT_S = 2.0  # a recording fills at most this much of a gap (a stall) by repeating the last frame


class FrameWriter(Protocol):
    """What the inference thread calls once per processed frame."""

    path: Path
    started: str  # one line for the status bar: what is being written where

    def write(self, image: np.ndarray, result: FrameResult, time_s: float | None) -> str | None:
        """Write one frame (``image``: the overlay); a one-line warning the first time something is off."""

    def close(self, error: Exception | None = None) -> str:
        """Finalize; what was kept ("118 frames recorded in /x.mp4"), or, after ``write`` raised ``error``,
        one line saying what stopped and what was kept."""


class Recording:
    """A VideoSink at the source fps that keeps real time: when frames were dropped (live mode, a slow
    model, a camera delivering slower than it claims), the last drawn frame is repeated up to each new
    frame's timestamp, so the file plays at the speed things happened. A writer fed fewer frames than its
    fps would play fast."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self.sink = VideoSink(self.path, fps=fps if fps > 0 else 30.0, size=size)  # OutputError when unwritable
        self.fps = self.sink.fps
        self.started = f"Recording to {self.path} at {self.fps:.1f} fps"
        self._start_s: float | None = None
        self._resize_noted = False

    def write(self, image: np.ndarray, result: FrameResult, time_s: float | None) -> str | None:
        """``time_s``: the frame's media time (files) or capture time (cameras), in seconds."""
        time_s = result.index / self.fps if time_s is None else time_s
        if self._start_s is None or time_s < self._start_s:  # first frame, or a file starting over
            self._start_s = time_s - self.sink.frames_written / self.fps
        due = round((time_s - self._start_s) * self.fps) + 1  # frames the file should hold after this one
        cap = int(self.fps * MAX_REPEAT_S)
        if due - self.sink.frames_written > cap:  # a long stall: fill part of it, then carry on from here
            self._start_s += (due - self.sink.frames_written - cap) / self.fps
            due = self.sink.frames_written + cap
        for _ in range(max(1, due - self.sink.frames_written)):
            self.sink.write(image)
        if self.sink.resized_frames and not self._resize_noted:  # the source changed size: say so once
            self._resize_noted = True
            return self.sink.resize_note()
        return None

    @property
    def frames_written(self) -> int:
        return self.sink.frames_written

    def close(self, error: Exception | None = None) -> str:
        self.sink.close()
        if error is None:
            return f"{self.frames_written} frames recorded in {self.path}"
        return f"{error}; recording stopped, {self.frames_written} frames kept in {self.path}"


class JsonOutput:
    """lpn_core's JsonWriter (the CLI's format); a frame of another size than the header's carries its own."""

    def __init__(self, path: Path, meta: dict) -> None:
        self.path = Path(path)
        self.writer = JsonWriter(self.path, meta)  # OutputError when unwritable
        self.size = tuple(meta["size"]) if meta.get("size") else None  # (W, H) in the header
        self.started = f"Exporting keypoints of every processed frame to {self.path}"

    def write(self, image: np.ndarray, result: FrameResult, time_s: float | None) -> None:
        size = (result.frame.shape[1], result.frame.shape[0])
        self.writer.write(result, time_s, **({} if self.size in (None, size) else {"size": list(size)}))

    def close(self, error: Exception | None = None) -> str:
        self.writer.close(complete=error is None)
        if error is None:
            return f"keypoints in {self.path}"
        reason = error if isinstance(error, LpnError) else \
            f"cannot write {self.path} ({getattr(error, 'strerror', None) or error})"
        return f"keypoint export stopped: {reason}"


class CsvOutput:
    """lpn_core's CsvWriter (the CLI's ``--csv``): one row per person per frame, joint angles included."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.writer = CsvWriter(self.path)  # OutputError when unwritable
        self.started = f"Exporting a CSV row per person per frame to {self.path}"

    def write(self, image: np.ndarray, result: FrameResult, time_s: float | None) -> None:
        self.writer.write(result, time_s)

    def close(self, error: Exception | None = None) -> str:
        self.writer.close()
        return f"{self.writer.rows} CSV rows in {self.path}" if error is None else f"CSV export stopped: {error}"


@dataclass(frozen=True, slots=True)
class OutputContext:
    """What the window knows when an output starts."""

    source: SourceInfo | None
    stem: str                    # the source's name in file names: "walk_away_720p", "camera"
    meta: dict                   # the JSON header (lpn_core.stream.json_header)
    image: np.ndarray | None     # the overlay on screen (snapshots)


@dataclass(frozen=True, slots=True)
class OutputKind:
    """One kind of per-frame output: its button texts, file name, shortcut and how to open its writer."""

    key: str
    idle: str
    active: str
    stem: str
    suffix: str
    shortcut: str
    opens: Callable[[Path, OutputContext], FrameWriter]
    needs_source: bool = False  # a recording needs the source's fps and size


KINDS: dict[str, OutputKind] = {kind.key: kind for kind in (
    OutputKind("record", "Record MP4", "Stop recording", "poses", ".mp4", "Ctrl+R",
               lambda path, ctx: Recording(path, ctx.source.fps, ctx.source.size), needs_source=True),
    OutputKind("json", "Export keypoints JSON", "Stop JSON export", "keypoints", ".json", "Ctrl+J",
               lambda path, ctx: JsonOutput(path, ctx.meta)),
    OutputKind("csv", "Export keypoints CSV", "Stop CSV export", "keypoints", ".csv", "Ctrl+E",
               lambda path, ctx: CsvOutput(path)),
)}


def discard(path: Path | None) -> None:
    """Remove a reserved output name that stayed empty because writing could not start."""
    if path is not None and path.is_file() and path.stat().st_size == 0:
        path.unlink(missing_ok=True)


class OutputPanel(QGroupBox):
    """Output folder, Record / JSON / CSV toggles and Snapshot. Says what it did through ``message`` and
    ``error`` (one line each); the window shows them in the status bar."""

    message = pyqtSignal(str)
    error = pyqtSignal(str)

    def __init__(self, worker: InferenceWorker, state: GuiState, context: Callable[[], OutputContext],
                 parent: QWidget | None = None) -> None:
        super().__init__("Output", parent)
        self._worker, self._state, self._context = worker, state, context
        column = QVBoxLayout(self)
        self.folder_label = QLabel()
        self.folder_label.setWordWrap(True)
        folder_button = QPushButton("Output folder…")
        folder_button.clicked.connect(self.choose_folder)
        column.addWidget(self.folder_label)
        column.addWidget(folder_button)
        self.buttons: dict[str, QPushButton] = {}
        for kind in KINDS.values():
            button = self.buttons[kind.key] = QPushButton(kind.idle)
            button.setCheckable(True)
            button.toggled.connect(lambda on, key=kind.key: self.toggle(key, on))
            column.addWidget(button)
        self.snapshot_button = QPushButton("Save snapshot PNG")
        self.snapshot_button.clicked.connect(lambda: self.save_snapshot())
        column.insertWidget(3, self.snapshot_button)
        self._show_folder()

    def add_shortcuts(self, window: QWidget) -> None:
        """Ctrl+R / Ctrl+J / Ctrl+E toggle the outputs, Ctrl+S saves a snapshot, anywhere in ``window``."""
        for kind in KINDS.values():
            add_shortcut(window, kind.shortcut, self.buttons[kind.key].toggle)
        add_shortcut(window, "Ctrl+S", lambda: self.save_snapshot())

    # --- folder ------------------------------------------------------------------------------------
    def output_dir(self) -> Path:
        return Path(self._state.output_dir or default_output_dir())

    def _show_folder(self) -> None:
        self.folder_label.setText(f"Saving to: {self.output_dir()}")

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder", str(self.output_dir()))
        if path:
            self._state.output_dir = path
            self._show_folder()

    def reserve(self, stem: str, suffix: str, context: OutputContext) -> Path:
        """A new file in the output folder (created if needed), reserved so that another window writing to
        the same folder in the same second gets another name (``_1``, ``_2``...); OutputError if impossible."""
        self._show_folder()
        return unique_path(self.output_dir(), f"{context.stem}_{stem}_{time.strftime('%Y%m%d_%H%M%S')}", suffix)

    # --- per-frame outputs ---------------------------------------------------------------------------
    def start(self, key: str, path: str | Path | None = None) -> bool:
        """Start output ``key`` (record, json, csv) to ``path`` or a new file in the output folder; False,
        with one line on ``error``, when there is no source to record or the file cannot be written."""
        kind, context, reserved = KINDS[key], self._context(), None
        if kind.needs_source and context.source is None:
            return self._refuse(key, "open a camera or a video before recording")
        try:
            target = Path(path) if path is not None else (reserved := self.reserve(kind.stem, kind.suffix, context))
            writer = kind.opens(target, context)
        except LpnError as err:
            discard(reserved)
            return self._refuse(key, str(err))
        self._worker.attach(key, writer)
        self._show(key, True)
        self.message.emit(writer.started)
        return True

    def stop(self, key: str) -> Path | None:
        """Finalize output ``key``; its path, or None when it was not running."""
        writer = self._worker.detach(key)
        self._show(key, False)
        if writer is None:
            return None
        self.message.emit(f"Saved {writer.close()}")
        return writer.path

    def toggle(self, key: str, on: bool) -> None:
        if on != self._worker.writing(key):
            (self.start if on else self.stop)(key)

    def finish_all(self) -> list[str]:
        """Finalize every output (the source failed, the window closes); what each kept."""
        kept = [writer.close() for writer in self._worker.detach_all()]
        self.sync()
        return kept

    def sync(self) -> None:
        """Buttons as the worker's outputs are (one it had to stop, e.g. on a full disk, is released)."""
        for key in self.buttons:
            self._show(key, self._worker.writing(key))

    def _refuse(self, key: str, message: str) -> bool:
        self.error.emit(message)
        self._show(key, False)
        return False

    def _show(self, key: str, on: bool) -> None:
        """Check state and label of a button together, without re-triggering it."""
        button, kind = self.buttons[key], KINDS[key]
        button.blockSignals(True)
        button.setChecked(on)
        button.blockSignals(False)
        button.setText(kind.active if on else kind.idle)

    # --- snapshot ------------------------------------------------------------------------------------
    def save_snapshot(self, path: str | Path | None = None) -> Path | None:
        """The frame on screen, overlay included, as PNG."""
        context, reserved = self._context(), None
        if context.image is None:
            self.error.emit("no frame to save yet")
            return None
        try:
            target = Path(path) if path is not None else (reserved := self.reserve("snapshot", ".png", context))
            ok = cv2.imwrite(str(target), context.image)
        except (LpnError, cv2.error) as err:
            discard(reserved)
            self.error.emit(str(err).strip().splitlines()[-1])
            return None
        if not ok:
            discard(reserved)
            self.error.emit(f"cannot write {target}: check that the folder exists and is writable")
            return None
        self.message.emit(f"Saved snapshot {target}")
        return target
