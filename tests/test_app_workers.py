"""app/workers.py: capture (latest frame wins, every frame when processing a file, pause/step, errors),
inference with a stand-in pipeline (swap between frames, recording at the source speed), model loading."""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import cv2
import numpy as np

from app import capture as capture_module
from app.capture import CaptureWorker, FrameChannel, FramePacket
from app.loader import ModelLoader
from app.outputs import JsonOutput, Recording
from app.workers import InferenceWorker
from lpn_core.errors import SourceError
from lpn_core.pipeline import PipelineSettings
from lpn_core.stream import FrameSource
from lpn_core.types import FrameResult, Pose
from tests.conftest import shared_path

WALK = "videos/walk_away_720p.mp4"        # 118 frames, 30 fps, 1280x720
TREADMILL = "videos/treadmill_360p.mp4"   # 361 frames, 480x360


def stop(thread, timeout_ms: int = 5000) -> None:
    thread.stop()
    thread.quit()
    assert thread.wait(timeout_ms), "worker did not stop"
    assert thread.isFinished() and not thread.isRunning()


def test_capture_keeps_only_the_newest_frame(qtbot) -> None:
    channel = FrameChannel()
    channel.consumer_ready.set()
    capture = CaptureWorker(str(shared_path(WALK)), channel)
    with qtbot.waitSignal(capture.opened, timeout=10000) as opened:
        capture.start()
    assert opened.args[0].size == (1280, 720) and opened.args[0].fps == 30.0
    time.sleep(1.0)  # a consumer far slower than the video
    packet = channel.take(0.5)
    read = capture.frames_read
    stop(capture)
    assert packet is not None and packet.index >= 10  # frames kept coming while nobody took them...
    assert packet.index >= read - 3                   # ...and the one waiting is the newest
    assert channel.take(0.0) is None or capture.frames_read > read  # no backlog behind it


def test_capture_processing_a_file_drops_nothing(qtbot) -> None:
    channel = FrameChannel()
    channel.consumer_ready.set()
    capture = CaptureWorker(str(shared_path(TREADMILL)), channel, process_all=True)
    capture.start()
    indices, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        packet = channel.take(0.05)
        if packet is not None:
            indices.append(packet.index)
        elif capture.isFinished():
            break
    stop(capture)
    assert len(indices) >= 350 and indices == list(range(len(indices))) and len(indices) == capture.frames_read


def test_capture_pause_and_step(qtbot) -> None:
    channel = FrameChannel()
    channel.consumer_ready.set()
    capture = CaptureWorker(str(shared_path(TREADMILL)), channel, paused=True)
    capture.start()
    assert channel.take(0.3) is None
    capture.step()
    assert channel.take(2.0).index == 0
    capture.step()
    assert channel.take(2.0).index == 1
    assert channel.take(0.3) is None
    stop(capture)


def test_bad_camera_index_reports_instead_of_crashing(qtbot) -> None:
    capture = CaptureWorker(57, FrameChannel())
    with qtbot.waitSignal(capture.failed, timeout=20000) as failed:
        capture.start()
    assert "camera 57" in failed.args[0] and "\n" not in failed.args[0]
    assert capture.wait(5000)


def test_unreadable_file_reports_instead_of_crashing(qtbot, tmp_path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    capture = CaptureWorker(str(broken), FrameChannel())
    with qtbot.waitSignal(capture.failed, timeout=10000) as failed:
        capture.start()
    assert "cannot" in failed.args[0] and "broken.mp4" in failed.args[0]
    assert capture.wait(5000)


class FakePipeline:
    """Stands in for lpn_core.Pipeline: one centred pose per frame, a fixed delay per frame."""

    def __init__(self, name: str = "fake-a", delay_s: float = 0.02) -> None:
        self.estimator = SimpleNamespace(model_name=name, untrained=True, weights_label="UNTRAINED",
                                         backend=SimpleNamespace(name="onnx"))
        self.delay_s, self.resets, self.updates = delay_s, 0, []

    def process(self, frame, index=None, timestamp_s=None) -> FrameResult:
        time.sleep(self.delay_s)
        h, w = frame.shape[:2]
        kpts = np.column_stack([np.linspace(w * 0.3, w * 0.7, 17), np.linspace(h * 0.2, h * 0.9, 17),
                                np.full(17, 0.9)]).astype(np.float32)
        pose = Pose(kpts, np.array([w * 0.25, h * 0.1, w * 0.75, h * 0.95], np.float32), 0.9, track_id=1)
        return FrameResult(index, frame, [pose], {"detect": 1.0, "infer": self.delay_s * 1e3})

    def swap_estimator(self, estimator) -> None:
        self.estimator = estimator

    def update(self, **changes) -> None:
        self.updates.append(changes)

    def reset(self) -> None:
        self.resets += 1


def feed(channel: FrameChannel, worker: InferenceWorker, packet: FramePacket, timeout_s: float = 5.0):
    channel.put(packet)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rendered = worker.display.take(0.05)
        if rendered is not None and rendered.result.index == packet.index:
            return rendered
    raise AssertionError(f"frame {packet.index} was not rendered")


def test_inference_draws_swaps_between_frames_and_records_at_source_speed(qtbot, tmp_path) -> None:
    channel = FrameChannel()
    worker = InferenceWorker(channel)
    pipeline = FakePipeline()
    worker.set_pipeline(pipeline)
    worker.start()
    frame = np.full((120, 160, 3), 60, np.uint8)
    first = feed(channel, worker, FramePacket(frame, 0, 0.0, (1, 0)))
    assert first.model == "fake-a" and len(first.result.poses) == 1
    assert np.any(first.image[60:] != frame[60:])  # skeleton drawn below the stats overlay
    assert not first.image.flags.owndata or first.image is not frame

    worker.update_pipeline(det_every=3)
    worker.swap_estimator(SimpleNamespace(model_name="fake-b", untrained=True, weights_label="UNTRAINED",
                                         backend=SimpleNamespace(name="onnx")))
    path = tmp_path / "rec.mp4"
    worker.attach("record", Recording(path, fps=10.0, size=(160, 120)))
    second = feed(channel, worker, FramePacket(frame, 1, 0.1, (1, 0)))
    assert second.model == "fake-b" and pipeline.updates == [{"det_every": 3}]
    feed(channel, worker, FramePacket(frame, 6, 0.6, (1, 0)))  # frames 2-5 were dropped live
    feed(channel, worker, FramePacket(frame, 0, 0.0, (1, 1)))  # the file starts over: tracks reset
    assert pipeline.resets == 2
    recording = worker.detach("record")
    assert recording.close() == f"7 frames recorded in {path}"  # the gap is filled: the file plays at source speed
    stop(worker)
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    cap.release()


def test_model_loader_builds_in_background_and_reports_missing_weights(qtbot, tmp_path) -> None:
    loader = ModelLoader()
    settings = PipelineSettings(weights="untrained", backend="torch", detector="none")
    with qtbot.waitSignal(loader.loaded, timeout=30000) as loaded:
        request = loader.request(settings, build_pipeline=True)
    result = loaded.args[0]
    assert result.request == request and result.pipeline is not None and result.estimator.untrained
    with qtbot.waitSignal(loader.failed, timeout=30000) as failed:
        loader.request(PipelineSettings(weights=str(tmp_path / "missing.pth"), backend="torch"), False)
    assert "missing.pth" in failed.args[0] and "\n" not in failed.args[0]
    assert loader.join(5.0)


# --- faults in the middle of a run (docs/RELIABILITY.md, "Faults") ---------------------------------------

class ScriptedSource(FrameSource):
    """Raw frames as given; then the end (a file) or, for a camera, a SourceError like an unplugged one."""

    fps = 30.0

    def __init__(self, frames: list, is_camera: bool = False) -> None:
        self._frames, self.is_camera = list(frames), is_camera
        self.name = "camera 0" if is_camera else "scripted.mp4"
        self.size = (160, 120)

    def grab(self):
        if self._frames:
            return True, self._frames.pop(0)
        if self.is_camera:
            raise SourceError("camera 0 stopped delivering frames (unplugged?)")
        return False, None


def run_capture(qtbot, monkeypatch, source: ScriptedSource) -> tuple[list, list, list]:
    """Run a CaptureWorker over ``source`` to its end; (packets, warnings, failures)."""
    monkeypatch.setattr(capture_module, "open_source", lambda spec: source)
    channel = FrameChannel()
    channel.consumer_ready.set()
    capture = CaptureWorker("scripted", channel, process_all=True)
    warned, failed, packets = [], [], []
    capture.warned.connect(warned.append)
    capture.failed.connect(failed.append)
    capture.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not capture.isFinished():
        if (packet := channel.take(0.05)) is not None:
            packets.append(packet)
    stop(capture)
    qtbot.wait(50)  # deliver the queued signals
    return packets, warned, failed


def test_capture_skips_unusable_frames_with_one_warning(qtbot, monkeypatch) -> None:
    good = np.zeros((120, 160, 3), np.uint8)
    frames = [good, None, np.zeros((0, 0), np.uint8), good[..., 0], good.astype(np.float32), np.dstack([good, good])]
    packets, warned, failed = run_capture(qtbot, monkeypatch, ScriptedSource(frames))
    assert [p.frame.shape for p in packets] == [(120, 160, 3)] * 2 and failed == []
    assert len(warned) == 1 and "skipped" in warned[0] and "unusable frame" in warned[0]


def test_an_unplugged_camera_reports_one_line(qtbot, monkeypatch) -> None:
    good = np.zeros((120, 160, 3), np.uint8)
    packets, warned, failed = run_capture(qtbot, monkeypatch, ScriptedSource([good] * 3, is_camera=True))
    assert len(packets) >= 1 and warned == []
    assert failed == ["camera 0 stopped delivering frames (unplugged?)"]


def test_disk_full_stops_recording_and_export_keeping_both(qtbot, tmp_path, monkeypatch) -> None:
    from test_stream import FullDisk, video_writer_failing_after

    monkeypatch.setattr(cv2, "VideoWriter", video_writer_failing_after(3))
    channel = FrameChannel()
    worker = InferenceWorker(channel)
    worker.set_pipeline(FakePipeline(delay_s=0.0))
    failed, warned = [], []
    worker.failed.connect(failed.append)
    worker.warned.connect(warned.append)
    worker.start()
    worker.attach("record", Recording(tmp_path / "rec.mp4", fps=10.0, size=(160, 120)))
    export = JsonOutput(tmp_path / "poses.json", {"size": [160, 120]})
    worker.attach("json", export)
    for i, shape in enumerate([(120, 160, 3), (240, 320, 3), (240, 320, 3)]):  # then the size changes
        feed(channel, worker, FramePacket(np.zeros(shape, np.uint8), i, i / 10, (1, 0)))
    export.writer._file = disk = FullDisk(export.writer._file)
    disk.fill()
    for i in range(3, 6):
        feed(channel, worker, FramePacket(np.zeros((240, 320, 3), np.uint8), i, i / 10, (1, 0)))
    qtbot.waitUntil(lambda: len(failed) == 2, timeout=5000)
    stop(worker)
    assert not worker.writing("record") and not worker.writing("json")
    assert all("\n" not in m for m in failed + warned) and len(warned) == 1 and "resized" in warned[0]
    recording, export = sorted(failed, key=lambda m: "keypoint" in m)
    assert "No space left" in recording and "recording stopped, 3 frames kept" in recording
    assert export.startswith("keypoint export stopped: cannot write") and "keeps the 3 entries" in export
    cap = cv2.VideoCapture(str(tmp_path / "rec.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3 and cap.read()[0]
    cap.release()
    data = json.loads((tmp_path / "poses.json").read_text())
    assert data["summary"] == {"frames": 3, "complete": False}
    assert [f.get("size") for f in data["frames"]] == [None, [320, 240], [320, 240]]
