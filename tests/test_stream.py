"""Frame sources, the interrupt-safe video sink, the latest-frame mailbox and the JSON writers."""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import shared_path
from lpn_core.errors import OutputError, SourceError
from lpn_core.stream import (CocoJsonWriter, JsonWriter, LatestFrame, VideoSink, camera_index, coco_image_id,
                             open_source, sane_fps)
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
