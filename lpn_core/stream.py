"""Frame sources (camera, video file, image, folder of images), the interrupt-safe video sink,
a one-slot latest-frame mailbox, and incremental JSON writers that stay valid when interrupted."""
from __future__ import annotations

import contextlib
import errno
import itertools
import json
import math
import os
import threading
from pathlib import Path
from typing import Any, BinaryIO, Final, Iterator

import cv2
import numpy as np

from .draw import KEYPOINT_NAMES, SKELETON
from .errors import OutputError, SourceError
from .types import FrameResult

IMAGE_EXTENSIONS: Final = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
DEFAULT_FPS: Final = 30.0
MAX_BAD_FRAMES: Final = 100  # unusable frames in a row before a source counts as broken
ROOM_CHECK_EVERY: Final = 30  # frames between two free-space checks of a video being written
MIN_FREE_BYTES: Final = 16 << 20  # stop recording below this: closing the mp4 needs room for its index


def camera_index(source: str | int) -> int | None:
    """0, '0', '1' ... -> camera index; anything else (a path) -> None."""
    if isinstance(source, int):
        return source
    text = str(source).strip()
    return int(text) if text.isdigit() else None


def sane_fps(fps: float) -> float:
    """Containers and cameras report 0, NaN or absurd rates; fall back to 30."""
    return float(fps) if fps and math.isfinite(fps) and 0.5 <= fps <= 480 else DEFAULT_FPS


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own logging for a block; our one-line error says what went wrong."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def as_bgr(frame: Any) -> np.ndarray | None:
    """Any frame a source may deliver -> (H, W, 3) uint8 BGR, or None when it is unusable (None, empty,
    not 8-bit, an odd number of channels). Gray (H, W) or (H, W, 1) and BGRA (H, W, 4) are converted."""
    if not isinstance(frame, np.ndarray) or frame.size == 0 or frame.dtype != np.uint8 or frame.ndim not in (2, 3):
        return None
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    if channels == 1:
        return cv2.cvtColor(np.ascontiguousarray(frame.reshape(frame.shape[:2])), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(frame) if channels == 3 else None


class FrameSource:
    """Base of every source: context manager and iterator of (H, W, 3) uint8 BGR frames.

    Subclasses implement ``grab()``; ``read()`` normalises each frame with ``as_bgr`` and skips (and counts,
    in ``skipped_frames``) the unusable ones."""

    fps: float = DEFAULT_FPS
    frame_count: int | None = None
    size: tuple[int, int] = (0, 0)  # (W, H) of the first frame
    is_camera: bool = False
    is_image: bool = False  # image or folder of images: frames are stills, outputs are images
    name: str = ""
    frames_read: int = 0
    skipped_frames: int = 0  # unusable frames (None, empty, not 8-bit) skipped so far

    def grab(self) -> tuple[bool, Any]:
        """(False, None) at the end, else (True, the raw frame, which may be unusable)."""
        raise NotImplementedError

    def read(self) -> np.ndarray | None:
        """The next (H, W, 3) uint8 BGR frame, None at the end; SourceError when only unusable frames come."""
        for _ in range(MAX_BAD_FRAMES):
            ok, raw = self.grab()
            if not ok:
                return None
            frame = as_bgr(raw)
            if frame is not None:
                self.frames_read += 1
                return frame
            self.skipped_frames += 1
        raise SourceError(f"'{self.name}' delivers only unusable frames ({MAX_BAD_FRAMES} in a row: empty or "
                          "not 8-bit images)")

    def close(self) -> None:
        pass

    def timestamp_s(self) -> float:
        """Time of the last frame read, from the source's clock (position in the stream / fps for files)."""
        return max(self.frames_read + self.skipped_frames - 1, 0) / self.fps

    def skipped_note(self) -> str | None:
        """One line saying how many unusable frames were skipped, or None when none was."""
        if not self.skipped_frames:
            return None
        return f"skipped {self.skipped_frames} unusable frame(s) of '{self.name}' (empty, or not an 8-bit image)"

    def __iter__(self) -> Iterator[np.ndarray]:
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoSource(FrameSource):
    """A video file or a camera through cv2.VideoCapture. Cameras keep a 1-frame buffer (no lag)."""

    def __init__(self, source: str | int) -> None:
        index = camera_index(source)
        self.is_camera = index is not None
        self.name = f"camera {index}" if self.is_camera else str(source)
        if self.is_camera:
            with quiet_opencv():  # a missing camera makes every capture backend log a multi-line error
                self._cap = cv2.VideoCapture(index)
            if not self._cap.isOpened():
                raise SourceError(f"cannot open camera {index}: no such device or it is busy (try another index)")
            self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # OpenCV/V4L2 queues 4 frames otherwise (ANCHORS §3.14)
        else:
            path = Path(source)
            if not path.is_file():
                raise SourceError(f"cannot open '{source}': no such file")
            self._cap = cv2.VideoCapture(str(path))
            if not self._cap.isOpened():
                raise SourceError(f"cannot open '{source}': not a video OpenCV can read (truncated or wrong codec?)")
        self.fps = sane_fps(self._cap.get(cv2.CAP_PROP_FPS))
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 and not self.is_camera else None
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            what = f"camera {index} opened but delivers no frames" if self.is_camera else \
                f"cannot read any frame from '{source}' (truncated or wrong codec?)"
            raise SourceError(what)
        self._pending: np.ndarray | None = first
        self.size = (first.shape[1], first.shape[0])
        self.frames_read = 0

    def grab(self) -> tuple[bool, Any]:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return True, frame
        ok, frame = self._cap.read()
        if ok:
            return True, frame
        if self.is_camera:
            raise SourceError(f"{self.name} stopped delivering frames (unplugged?)")
        return False, None

    @property
    def truncated(self) -> bool:
        """True when fewer frames decoded than the container announced (checked after the end)."""
        return self.frame_count is not None and self.frames_read + self.skipped_frames < self.frame_count - 1

    def close(self) -> None:
        self._cap.release()


class ImageSource(FrameSource):
    """One image, or every image in a folder (sorted by name). ``path`` names the current image."""

    is_image = True
    fps = 1.0

    def __init__(self, paths: list[Path], name: str) -> None:
        if not paths:
            raise SourceError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in '{name}'")
        self.paths, self.name, self.frame_count = paths, name, len(paths)
        self.path: Path | None = None
        self.skipped: list[Path] = []
        first = cv2.imread(str(paths[0]))
        self.size = (first.shape[1], first.shape[0]) if first is not None else (0, 0)
        if len(paths) == 1 and first is None:
            raise SourceError(f"cannot read image '{paths[0]}' (corrupt or unsupported format?)")

    def read(self) -> np.ndarray | None:
        while self.frames_read + len(self.skipped) < len(self.paths):
            path = self.paths[self.frames_read + len(self.skipped)]
            image = as_bgr(cv2.imread(str(path)))
            if image is None:
                self.skipped.append(path)
                continue
            self.path, self.frames_read = path, self.frames_read + 1
            return image
        return None


def open_source(source: str | int) -> FrameSource:
    """Camera index, video file, image file or folder of images -> an open FrameSource (SourceError if not)."""
    if camera_index(source) is not None:
        return VideoSource(source)
    path = Path(str(source)).expanduser()
    if path.is_dir():
        return ImageSource(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), str(path))
    if not path.exists():
        raise SourceError(f"cannot open '{source}': no such file, folder or camera")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSource([path], str(path))
    return VideoSource(path)


def prepare_output(path: str | os.PathLike, is_folder: bool = False) -> Path:
    """Create the folder that will hold ``path`` (or ``path`` itself); OutputError, one line, if impossible."""
    path = Path(path)
    folder = path if is_folder else path.parent
    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise OutputError(f"cannot write '{path}': '{blocker}' is a file, not a folder; choose another output path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write '{path}': {exc.strerror or exc}; choose a writable folder") from exc
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write '{path}': folder '{folder}' is not writable; choose another output path")
    return path


def unique_path(folder: str | os.PathLike, stem: str, suffix: str) -> Path:
    """``folder/<stem><suffix>``, else ``<stem>_1<suffix>``, ``<stem>_2<suffix>``...: the first free name, reserved
    by creating it empty with an exclusive create, so two writers (two app windows) never share a file."""
    folder = prepare_output(folder, is_folder=True)
    for n in itertools.count():
        path = folder / f"{stem}{f'_{n}' if n else ''}{suffix}"
        try:
            with open(path, "x"):
                return path
        except FileExistsError:
            if n >= 9999:
                raise OutputError(f"cannot find a free name for '{stem}{suffix}' in '{folder}': clean it up") from None
        except OSError as exc:
            raise OutputError(f"cannot write '{path}': {exc.strerror or exc}; choose a writable folder") from exc
    raise AssertionError("unreachable")


def room_problem(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot take more output (read-only, or under MIN_FREE_BYTES free), else None."""
    try:
        stats = os.statvfs(folder)
    except AttributeError:  # not POSIX: rely on the writes themselves
        return None
    except OSError as exc:
        return f"the output folder is gone ({exc.strerror or exc})"
    if stats.f_flag & os.ST_RDONLY:
        return "the disk became read-only"
    if stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
        return "the disk is full"
    return None


class VideoSink:
    """mp4v writer at the source's fps and size; closing (also on Ctrl-C or an exception) finalises
    the file so it plays with every frame written so far. Frames of another size are resized to fit
    (``resize_note()`` says so). A write error, a read-only disk or one about to fill (checked every
    ROOM_CHECK_EVERY frames: OpenCV itself does not report write errors) closes the file, playable with
    the frames written so far, and raises OutputError."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]) -> None:
        self.path, self.fps, self.size = Path(path), sane_fps(fps), (int(size[0]), int(size[1]))
        prepare_output(self.path)
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
        if not self._writer.isOpened():
            raise OutputError(f"cannot write video '{self.path}': OpenCV's mp4v writer refused it "
                              "(use a .mp4 name in a writable folder)")
        self.frames_written = 0
        self.resized_frames = 0
        self._other_size: tuple[int, int] | None = None  # the first size that did not fit

    def write(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:  # a mismatched size makes an empty file
            self._other_size = self._other_size or (frame.shape[1], frame.shape[0])
            self.resized_frames += 1
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        problem = room_problem(self.path.parent) if self.frames_written % ROOM_CHECK_EVERY == 0 else None
        try:
            if problem is None:
                self._writer.write(frame)
        except (cv2.error, OSError) as exc:
            problem = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[-1]
        if problem is not None:
            self.close()
            raise OutputError(f"cannot write video '{self.path}': {problem}; the {self.frames_written} frames "
                              "before it are kept and play")
        self.frames_written += 1

    def resize_note(self) -> str | None:
        """One line when frames of another size were resized to the video's size, else None."""
        if not self.resized_frames:
            return None
        (new_w, new_h), (width, height) = self._other_size, self.size
        return (f"the frame size changed mid-stream ({width}x{height} -> {new_w}x{new_h}); {self.resized_frames} "
                f"frame(s) were resized to {width}x{height} in '{self.path}'")

    def close(self) -> None:
        self._writer.release()

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LatestFrame:
    """One-slot mailbox shared by two threads: put() overwrites (latest wins), take() waits briefly."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None

    def put(self, item: Any) -> None:
        with self._cond:
            self._item = item
            self._cond.notify()

    def take(self, timeout: float = 0.1) -> Any:
        """The newest item (removing it), or None if nothing arrived within ``timeout`` seconds."""
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item


class _JsonArrayFile:
    """Writes ``prefix`` + items joined by commas + a suffix so that the file is valid JSON after every item:
    each item goes over the previous suffix and is followed by a fresh one. A failed write (disk full,
    read-only) puts the last suffix back and raises OutputError; the file keeps every item before it."""

    def __init__(self, path: str | os.PathLike, prefix: str) -> None:
        self.path = Path(path)
        prepare_output(self.path)
        try:
            self._file: BinaryIO | None = open(self.path, "wb", buffering=0)
        except OSError as exc:
            raise OutputError(f"cannot write '{self.path}': {exc.strerror or exc}; choose a writable folder") from exc
        self.count = 0
        self.failed = False  # a write failed: the file holds the entries before it
        self._end = 0  # where the next item goes: just past the last one
        try:
            self._append(prefix)
        except OSError as exc:
            self._file.close()
            raise OutputError(f"cannot write '{self.path}': {exc.strerror or exc}; choose a writable folder") from exc

    def _suffix(self) -> str:
        raise NotImplementedError

    def _item(self, item: Any) -> None:
        assert self._file is not None, "writer already closed"
        self.count += 1
        try:
            self._append(("\n" if self.count == 1 else ",\n") + json.dumps(item, separators=(",", ":")))
        except OSError as exc:
            self.count, self.failed = self.count - 1, True
            self._rewrite_suffix()
            raise OutputError(f"cannot write '{self.path}': {exc.strerror or exc}; it keeps the {self.count} "
                              "entries before it, as valid JSON") from exc

    def _append(self, text: str) -> None:
        """``text`` after the last item, then the current suffix."""
        data = text.encode()
        self._write_at(self._end, data + self._suffix().encode())
        self._end += len(data)

    def _write_at(self, offset: int, data: bytes) -> None:
        assert self._file is not None
        self._file.seek(offset)
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            if not written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
        self._file.truncate()

    def _rewrite_suffix(self) -> None:
        """After a failed write: the suffix again, in room the file already has; best effort."""
        with contextlib.suppress(OSError):
            self._write_at(self._end, self._suffix().encode())

    def _close(self) -> None:
        if self._file is not None:
            self._rewrite_suffix()
            self._file.close()
            self._file = None


def json_header(settings: Any, *, model: str, untrained: bool, detector: str | None, source: str | None,
                fps: float | None = None, size: tuple[int, int] | None = None,
                frame_count: int | None = None, weights_label: str | None = None,
                precision: str | None = None) -> dict[str, Any]:
    """The ``meta`` block of a per-video JSON, shared by the CLI and the GUI. ``settings`` is a
    PipelineSettings; ``model``, ``untrained``, ``weights_label`` and ``precision`` say what actually ran."""
    return {"format": "lpn-pose/1", "model": model, "weights": settings.weights, "untrained": untrained,
            "weights_label": weights_label,
            "backend": settings.backend, "precision": precision, "detector": detector, "source": source, "fps": fps,
            "size": list(size) if size else None, "frame_count": frame_count, "det_every": settings.det_every,
            "flip_test": settings.flip_test, "smoothing": settings.smoothing, "kpt_thr": settings.kpt_thr,
            "keypoint_names": list(KEYPOINT_NAMES), "skeleton": [list(link) for link in SKELETON]}


class JsonWriter(_JsonArrayFile):
    """Per-video JSON: ``{"meta": {...}, "frames": [{frame, time_s, people: [{id, box, score, keypoints}]}],
    "summary": {frames, complete}}``; keypoints are [x, y, score] in frame pixels."""

    def __init__(self, path: str | os.PathLike, meta: dict[str, Any]) -> None:
        self.complete = False
        super().__init__(path, '{"meta": ' + json.dumps(meta) + ',\n"frames": [')

    def _suffix(self) -> str:
        return "\n],\n" + json.dumps({"summary": {"frames": self.count, "complete": self.complete}})[1:] + "\n"

    def write(self, result: FrameResult, time_s: float | None = None, **extra: Any) -> None:
        frame = {"frame": result.index, "time_s": None if time_s is None else round(float(time_s), 4), **extra,
                 "people": [pose.to_dict() for pose in result.poses]}
        self._item(frame)

    def close(self, complete: bool | None = None) -> None:
        if complete is not None and self._file is not None:
            self.complete = complete and not self.failed
        self._close()

    def __enter__(self) -> JsonWriter:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        self.close(complete=self.complete or exc_type is None)


class CocoJsonWriter(_JsonArrayFile):
    """COCO keypoint results: ``[{image_id, category_id: 1, keypoints: [x, y, s] * 17, score}]``."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path, "[")

    def _suffix(self) -> str:
        return "\n]\n"

    def write(self, result: FrameResult, image_id: int) -> None:
        for pose in result.poses:
            kpts = [round(float(v), 3) for v in np.asarray(pose.keypoints, np.float64).reshape(-1)]
            self._item({"image_id": int(image_id), "category_id": 1, "keypoints": kpts,
                        "score": round(float(pose.score), 5)})

    def close(self) -> None:
        self._close()

    def __enter__(self) -> CocoJsonWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def coco_image_id(path: Path | None, fallback: int) -> int:
    """COCO file names are the image id ('000000000785.jpg' -> 785); anything else -> ``fallback``."""
    return int(path.stem) if path is not None and path.stem.isdigit() else fallback
