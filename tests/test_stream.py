"""Frame sources, the interrupt-safe video sink, the latest-frame mailbox and the JSON writers."""
from __future__ import annotations

import errno
import json
import os
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from conftest import shared_path
from lpn_core import stream
from lpn_core.errors import OutputError, SourceError
from lpn_core.stream import (CocoJsonWriter, FrameSource, JsonWriter, LatestFrame, VideoSink, as_bgr, camera_index,
                             coco_image_id, open_source, sane_fps, unique_path)
from lpn_core.types import FrameResult, Pose


def truncated_copy(tmp_path: Path, fraction: float) -> Path:
    data = shared_path("videos/walk_away_720p.mp4").read_bytes()
    path = tmp_path / f"walk_{int(fraction * 100)}.mp4"
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def frame_count(path: Path) -> tuple[int, float]:
    cap = cv2.VideoCapture(str(path))
    fps, n = cap.get(cv2.CAP_PROP_FPS), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n, fps


def a_result(index: int) -> FrameResult:
    kpts = np.tile(np.array([[10.0, 20.0, 0.5]], np.float32), (17, 1))
    pose = Pose(keypoints=kpts, box=np.array([0, 0, 30, 60], np.float32), score=0.4, track_id=1)
    return FrameResult(index=index, frame=np.zeros((4, 4, 3), np.uint8), poses=[pose])


def test_camera_index_and_fps_fallback() -> None:
    assert camera_index(0) == 0 and camera_index("2") == 2 and camera_index("a.mp4") is None
    assert sane_fps(0.0) == 30.0 and sane_fps(float("nan")) == 30.0 and sane_fps(25.0) == 25.0


def test_video_source_reports_fps_count_size() -> None:
    with open_source(str(shared_path("videos/walk_away_720p.mp4"))) as source:
        assert (source.fps, source.frame_count, source.size, source.is_camera) == (30.0, 118, (1280, 720), False)
        frame = source.read()
        assert frame.shape == (720, 1280, 3) and source.frames_read == 1 and source.timestamp_s() == 0.0


@pytest.mark.parametrize("bad", ["missing.mp4", "missing_folder/"])
def test_missing_source_is_a_source_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SourceError, match="cannot open"):
        open_source(str(tmp_path / bad))


def test_not_a_video_and_header_only_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(SourceError, match="truncated or wrong codec"):
        open_source(str(text))
    with pytest.raises(SourceError, match="truncated or wrong codec"):
        open_source(str(truncated_copy(tmp_path, 0.001)))


def test_truncated_video_yields_the_decodable_frames(tmp_path: Path) -> None:
    with open_source(str(truncated_copy(tmp_path, 0.4))) as source:
        frames = sum(1 for _ in source)
        assert 10 < frames < 118 and source.truncated
    with open_source(str(shared_path("videos/walk_away_720p.mp4"))) as source:
        assert sum(1 for _ in source) == 118 and not source.truncated


def test_camera_that_does_not_open() -> None:
    with pytest.raises(SourceError, match="cannot open camera 99"):
        open_source(99)


def test_image_and_folder_sources(tmp_path: Path) -> None:
    image = shared_path("coco_val2017/images/000000000785.jpg")
    with open_source(str(image)) as source:
        assert source.is_image and source.read().ndim == 3 and source.read() is None
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(image, folder / "b.jpg")
    shutil.copy(image, folder / "a.png")  # a JPEG named .png still decodes
    (folder / "c.jpg").write_bytes(b"corrupt")
    (folder / "readme.txt").write_text("ignored")
    with open_source(str(folder)) as source:
        names = [source.path.name for _ in source]
        assert names == ["a.png", "b.jpg"] and [p.name for p in source.skipped] == ["c.jpg"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(str(empty))


def test_video_sink_writes_playable_file_even_after_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "out" / "clip.mp4"
    with pytest.raises(RuntimeError):
        with VideoSink(path, fps=25.0, size=(64, 48)) as sink:
            for i in range(5):
                sink.write(np.full((48, 64, 3), i * 40, np.uint8))
            sink.write(np.zeros((100, 100, 3), np.uint8))  # another size: resized, not silently dropped
            raise RuntimeError("boom")
    assert sink.frames_written == 6
    assert frame_count(path) == (6, 25.0)


def test_video_sink_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        VideoSink(blocker / "out.mp4", 30.0, (64, 48))


def test_latest_frame_keeps_only_the_newest() -> None:
    box = LatestFrame()
    assert box.take(timeout=0.01) is None
    box.put(1)
    box.put(2)
    assert box.take() == 2 and box.take(timeout=0.01) is None
    threading.Timer(0.05, box.put, args=(3,)).start()
    assert box.take(timeout=2.0) == 3


def test_json_writer_is_valid_when_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "poses.json"
    with pytest.raises(KeyboardInterrupt):
        with JsonWriter(path, {"model": "lpn50", "fps": 30.0}) as writer:
            for i in range(3):
                writer.write(a_result(i), time_s=i / 30)
            raise KeyboardInterrupt
    data = json.loads(path.read_text())
    assert data["meta"]["model"] == "lpn50" and data["summary"] == {"frames": 3, "complete": False}
    person = data["frames"][2]["people"][0]
    assert data["frames"][2]["frame"] == 2 and person["id"] == 1 and len(person["keypoints"]) == 17
    with JsonWriter(path, {}) as writer:
        pass
    assert json.loads(path.read_text()) == {"meta": {}, "frames": [], "summary": {"frames": 0, "complete": True}}


def test_coco_writer_and_image_ids(tmp_path: Path) -> None:
    path = tmp_path / "coco.json"
    with CocoJsonWriter(path) as writer:
        writer.write(a_result(0), image_id=785)
    [entry] = json.loads(path.read_text())
    assert entry["image_id"] == 785 and entry["category_id"] == 1 and len(entry["keypoints"]) == 51
    assert coco_image_id(Path("000000000785.jpg"), 3) == 785 and coco_image_id(Path("me.jpg"), 3) == 3


# --- faults in the middle of a run (docs/RELIABILITY.md, "Faults") ---------------------------------------

GRAY = np.arange(12, dtype=np.uint8).reshape(3, 4)


@pytest.mark.parametrize("frame", [GRAY, GRAY[..., None], np.dstack([GRAY] * 4), np.dstack([GRAY] * 3)[:, ::-1]],
                         ids=["gray", "gray HxWx1", "BGRA", "BGR view"])
def test_as_bgr_converts_gray_and_bgra(frame: np.ndarray) -> None:
    bgr = as_bgr(frame)
    assert bgr.shape == (3, 4, 3) and bgr.dtype == np.uint8 and bgr.flags.c_contiguous
    assert set(np.unique(bgr)) <= set(range(12))


@pytest.mark.parametrize("frame", [None, np.zeros((0, 4, 3), np.uint8), np.zeros((3, 4, 3), np.float32),
                                   np.zeros((3, 4, 3), np.uint16), np.zeros((3, 4, 5), np.uint8),
                                   np.zeros(12, np.uint8), "not an array"],
                         ids=["None", "empty", "float32", "uint16", "5 channels", "1-D", "str"])
def test_as_bgr_rejects_unusable_frames(frame) -> None:
    assert as_bgr(frame) is None


class ScriptedSource(FrameSource):
    """Delivers the given raw frames (any content), then ends."""

    name = "scripted"

    def __init__(self, frames: list) -> None:
        self._frames = list(frames)

    def grab(self):
        return (True, self._frames.pop(0)) if self._frames else (False, None)


def test_sources_skip_unusable_frames_and_convert_the_rest() -> None:
    good = np.zeros((48, 64, 3), np.uint8)
    source = ScriptedSource([good, None, GRAY, np.zeros((0, 0), np.uint8), np.zeros((48, 64, 4), np.uint8),
                             good.astype(np.float32)])
    frames = list(source)
    assert [f.shape for f in frames] == [(48, 64, 3), (3, 4, 3), (48, 64, 3)]
    assert source.frames_read == 3 and source.skipped_frames == 3
    note = source.skipped_note()
    assert "skipped 3 unusable frame(s) of 'scripted'" in note and "\n" not in note
    assert ScriptedSource([good]).skipped_note() is None
    with pytest.raises(SourceError, match="only unusable frames"):
        ScriptedSource([None] * stream.MAX_BAD_FRAMES).read()


def test_video_sink_resizes_a_new_frame_size_and_says_so_once(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    with VideoSink(path, fps=25.0, size=(64, 48)) as sink:
        assert sink.resize_note() is None
        for shape in [(48, 64, 3), (120, 160, 3), (90, 100, 3), (120, 160, 3)]:
            sink.write(np.zeros(shape, np.uint8))
    note = sink.resize_note()
    assert note.count("\n") == 0 and "64x48 -> 160x120" in note and "3 frame(s) were resized" in note
    assert frame_count(path) == (4, 25.0)


def video_writer_failing_after(count: int):
    """A stand-in for cv2.VideoWriter whose write raises ENOSPC after ``count`` frames (a disk filling up)."""
    real = cv2.VideoWriter

    class Failing:
        def __init__(self, *args) -> None:
            self._real, self._n = real(*args), 0

        def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
            return self._real.isOpened()

        def write(self, frame) -> None:
            if self._n >= count:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self._n += 1
            self._real.write(frame)

        def release(self) -> None:
            self._real.release()

    return Failing


def test_video_sink_write_error_keeps_a_playable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cv2, "VideoWriter", video_writer_failing_after(4))
    path = tmp_path / "clip.mp4"
    with pytest.raises(OutputError) as info:
        with VideoSink(path, fps=25.0, size=(64, 48)) as sink:
            for i in range(10):
                sink.write(np.full((48, 64, 3), i * 20, np.uint8))
    message = str(info.value)
    assert "\n" not in message and "No space left" in message and "the 4 frames before it are kept" in message
    assert sink.frames_written == 4 and frame_count(path) == (4, 25.0)


@pytest.mark.parametrize("fault, says", [("full", "the disk is full"), ("read-only", "read-only")])
def test_video_sink_stops_before_the_disk_fills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str,
                                               says: str) -> None:
    """OpenCV does not report write errors: the sink checks the disk itself, while the file can still close."""
    checks = []

    def statvfs(folder):
        checks.append(folder)
        broken = len(checks) > 2
        return SimpleNamespace(f_flag=os.ST_RDONLY if broken and fault == "read-only" else 0, f_frsize=4096,
                               f_bavail=0 if broken and fault == "full" else 1 << 30)

    monkeypatch.setattr(stream, "ROOM_CHECK_EVERY", 2)
    monkeypatch.setattr(os, "statvfs", statvfs)
    path = tmp_path / "clip.mp4"
    with pytest.raises(OutputError, match=says):
        with VideoSink(path, fps=25.0, size=(64, 48)) as sink:
            for _ in range(10):
                sink.write(np.zeros((48, 64, 3), np.uint8))
    monkeypatch.undo()
    assert frame_count(path) == (4, 25.0)  # checked before frames 0, 2 and 4: the third check stops it


class FullDisk:
    """Wraps a writer's file: after ``fill()`` the disk has no room beyond the file's current size, so a write
    past it stores what fits and fails with ENOSPC, as write(2) does."""

    def __init__(self, file) -> None:
        self.file, self.limit = file, None

    def fill(self) -> None:
        self.limit = os.fstat(self.file.fileno()).st_size

    def write(self, data) -> int:
        room = None if self.limit is None else self.limit - self.file.tell()
        if room is not None and room < len(data):
            self.file.write(data[:max(room, 0)])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.file.write(data)

    def __getattr__(self, name: str):
        return getattr(self.file, name)


def test_json_writers_stay_valid_when_the_disk_fills(tmp_path: Path) -> None:
    path, coco_path = tmp_path / "poses.json", tmp_path / "coco.json"
    with pytest.raises(OutputError) as info:
        with JsonWriter(path, {"model": "lpn50"}) as writer:
            writer._file = FullDisk(writer._file)
            for i in range(3):
                writer.write(a_result(i), time_s=i / 30)
            writer._file.fill()
            writer.write(a_result(3), time_s=0.1)
    message = str(info.value)
    assert "No space left" in message and "keeps the 3 entries" in message and "\n" not in message
    data = json.loads(path.read_text())
    assert len(data["frames"]) == 3 and data["summary"] == {"frames": 3, "complete": False}

    coco = CocoJsonWriter(coco_path)
    coco._file = FullDisk(coco._file)
    coco.write(a_result(0), image_id=1)
    coco._file.fill()
    with pytest.raises(OutputError, match="keeps the 1 entries"):
        coco.write(a_result(1), image_id=2)
    assert len(json.loads(coco_path.read_text())) == 1  # valid before close, too
    coco.close()
    assert len(json.loads(coco_path.read_text())) == 1


def test_json_is_valid_after_every_frame_even_if_never_closed(tmp_path: Path) -> None:
    """A killed process (no close at all) still leaves valid JSON."""
    path = tmp_path / "poses.json"
    writer = JsonWriter(path, {})
    for i in range(2):
        writer.write(a_result(i))
        assert json.loads(path.read_text())["summary"] == {"frames": i + 1, "complete": False}
    writer.close(complete=True)
    assert json.loads(path.read_text())["summary"] == {"frames": 2, "complete": True}


def test_unique_path_never_hands_out_a_name_twice(tmp_path: Path) -> None:
    """Two app windows recording into one folder in the same second get two files."""
    first, second = unique_path(tmp_path, "walk_poses_20250101_120000", ".mp4"), \
        unique_path(tmp_path, "walk_poses_20250101_120000", ".mp4")
    assert (first.name, second.name) == ("walk_poses_20250101_120000.mp4", "walk_poses_20250101_120000_1.mp4")
    got: list[Path] = []
    threads = [threading.Thread(target=lambda: got.append(unique_path(tmp_path / "new", "snap", ".png")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(got)) == 8 and all(p.is_file() for p in got)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        unique_path(blocker, "snap", ".png")
