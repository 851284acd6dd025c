"""app/main_window.py on real videos, offscreen: frames and poses arrive, the model dropdown switches
without stalling, recording/JSON/snapshot files are readable, errors reach the status bar, closing joins
every thread, settings are remembered. Untrained weights (no LPN weights here): timing and plumbing only."""
from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np
import pandas as pd

from app import MainWindow
from app import capture as capture_module
from lpn_core.errors import SourceError
from lpn_core.stream import FrameSource
from tests.conftest import shared_path, wait_frames

WALK = "videos/walk_away_720p.mp4"
DETECTOR = "detectors/yolov8n_int8_openvino_model"


def wait_quiet(qtbot, window: MainWindow, quiet_s: float = 2.0, timeout_s: float = 30.0) -> int:
    """Wait until no frame was shown for ``quiet_s``; the number of frames shown by then."""
    deadline, last, since = time.monotonic() + timeout_s, window.frames_shown, time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "frames kept coming"
        qtbot.wait(100)
        if window.frames_shown != last:
            last, since = window.frames_shown, time.monotonic()
    return last


def assert_all_joined(window: MainWindow) -> None:
    assert window.threads, "no threads recorded"
    for thread in window.threads:
        assert thread.isFinished() and not thread.isRunning()


def test_window_shows_poses_records_and_closes_cleanly(qtbot, make_window, tmp_path) -> None:
    window = make_window(str(shared_path(WALK)), detector=str(shared_path(DETECTOR)))
    window.source_box.loop_check.setChecked(True)
    window.model_box.kpt_slider.setValue(0)  # untrained joints score low: draw them all
    wait_frames(qtbot, window, 2)
    rendered = window.last_rendered
    assert len(rendered.result.poses) >= 1 and window.statusBar().people_label.text() != "People –"
    assert rendered.untrained and rendered.model == "lpn50"
    lower = slice(rendered.image.shape[0] // 3, None)  # below the banner and the stats readout
    assert np.count_nonzero(np.any(rendered.image[lower] != rendered.result.frame[lower], axis=2)) > 500
    painted = window.view.grab().toImage()
    assert painted.width() > 0 and window.statusBar().fps_label.text().startswith("FPS")

    assert window.outputs.start("record", tmp_path / "out" / "rec.mp4")
    assert window.outputs.start("json", tmp_path / "out" / "keypoints.json")
    wait_frames(qtbot, window, 3)
    snapshot = window.outputs.save_snapshot(tmp_path / "out" / "snap.png")
    assert cv2.imread(str(snapshot)).shape == (720, 1280, 3)
    assert window.source_box.progress.isVisible() and window.source_box.progress.maximum() == 118 and window.source_box.progress.value() >= 1

    window.source_box.pause_button.click()  # pause, then step: exactly one more frame each time
    paused_at = wait_quiet(qtbot, window)  # a frame already in inference may still arrive
    window.source_box.step_button.click()
    qtbot.waitUntil(lambda: window.frames_shown == paused_at + 1, timeout=15000)
    assert wait_quiet(qtbot, window) == paused_at + 1

    # an unreadable file while recording: one-line error, the recording made so far is kept
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 100)
    window.open_source(str(broken))
    qtbot.waitUntil(lambda: "broken.mp4" in window.statusBar().currentMessage(), timeout=15000)
    assert window.statusBar().currentMessage().startswith("Error: cannot")
    window.outputs.stop("json")
    window.close()
    assert_all_joined(window)

    cap = cv2.VideoCapture(str(tmp_path / "out" / "rec.mp4"))
    ok, frame = cap.read()
    assert ok and frame.shape == (720, 1280, 3) and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= 3
    cap.release()
    exported = json.loads((tmp_path / "out" / "keypoints.json").read_text())
    assert len(exported["frames"]) >= 3 and exported["meta"]["untrained"] is True
    assert len(exported["frames"][0]["people"][0]["keypoints"]) == 17


def test_model_dropdown_switches_without_stalling(qtbot, make_window) -> None:
    window = make_window(str(shared_path(WALK)))
    window.source_box.loop_check.setChecked(True)
    wait_frames(qtbot, window, 3)
    stamps: list[float] = []
    window.frame_shown.connect(lambda _: stamps.append(time.monotonic()))
    switched_at = time.monotonic()
    window.model_box.model_combo.setCurrentIndex(window.model_box.model_combo.findData("lpn101"))
    qtbot.waitUntil(lambda: window.last_rendered.model == "lpn101", timeout=90000)
    ready_at = time.monotonic()
    wait_frames(qtbot, window, 2)
    during = [t for t in stamps if t <= ready_at]
    gaps = np.diff([switched_at, *stamps])
    assert len(during) >= 3, "frames stopped while the new model was loading"
    worst = int(gaps.argmax())
    assert gaps.max() < 1.0, (f"frames stalled {gaps.max():.2f} s during the switch, ending "
                              f"{stamps[worst] - switched_at:.2f} s after it (new model shown at "
                              f"{ready_at - switched_at:.2f} s)")
    assert window.model_label.text().startswith("LPN-101")


def test_precision_dropdown_runs_int8_and_says_so(qtbot, make_window) -> None:
    window = make_window(str(shared_path(WALK)), precision="fp32")
    qtbot.waitUntil(lambda: "ONNX Runtime fp32" in window.model_label.text(), timeout=90000)
    window.model_box.precision_combo.setCurrentIndex(window.model_box.precision_combo.findData("int8"))
    qtbot.waitUntil(lambda: "ONNX Runtime INT8" in window.model_label.text(), timeout=90000)
    assert window.state.precision == "int8" and window.settings.precision == "int8"
    window.model_box.backend_combo.setCurrentIndex(window.model_box.backend_combo.findData("torch"))
    assert not window.model_box.precision_combo.isEnabled()  # PyTorch runs fp32 only
    qtbot.waitUntil(lambda: "PyTorch" in window.model_label.text(), timeout=90000)


def test_process_every_frame_drops_none(qtbot, make_window) -> None:
    window = make_window(str(shared_path(WALK)), backend="torch")
    window.source_box.process_all_check.setChecked(True)  # before the model is ready: the file has not started
    wait_frames(qtbot, window, 8)
    window.source_box.pause_button.click()
    wait_quiet(qtbot, window)
    last = window.last_rendered.result.index
    assert window.inference.frames_processed == last + 1  # every frame up to the one shown was processed
    assert window.source_box.progress.value() == last + 1


def test_paints_at_most_max_paint_hz_but_processes_every_frame(qtbot, make_window) -> None:
    """Painting a 720p frame costs the GUI thread milliseconds; beyond MAX_PAINT_HZ it only steals cores."""
    from app.main_window import MAX_PAINT_HZ

    window = make_window(str(shared_path(WALK)))
    window.source_box.process_all_check.setChecked(True)
    wait_frames(qtbot, window, 3)
    shown, processed, start = window.frames_shown, window.inference.frames_processed, time.monotonic()
    qtbot.wait(3000)
    elapsed = time.monotonic() - start
    assert (window.frames_shown - shown) / elapsed <= MAX_PAINT_HZ * 1.2
    assert window.inference.frames_processed - processed >= window.frames_shown - shown


def test_a_model_that_cannot_load_leaves_the_running_one(qtbot, make_window, tmp_path, monkeypatch) -> None:
    import torch

    from lpn_core.model import create_model

    from lpn_core import weights as W

    monkeypatch.setenv("LPN_POSE_CACHE", str(tmp_path / "cache"))  # no LPN-101 weights anywhere:
    monkeypatch.setattr(W, "BUNDLED_DIR", tmp_path / "no-bundle")  # neither cached nor bundled
    checkpoint = tmp_path / "lpn50_mine.pth"
    torch.save(create_model("lpn50").state_dict(), checkpoint)  # a checkpoint for LPN-50 only
    window = make_window(str(shared_path(WALK)), weights=str(checkpoint), backend="torch")
    window.source_box.loop_check.setChecked(True)
    wait_frames(qtbot, window, 2)
    window.model_box.model_combo.setCurrentIndex(window.model_box.model_combo.findData("lpn101"))
    status = window.statusBar().currentMessage
    qtbot.waitUntil(lambda: "no weights for lpn101" in status(), timeout=60000)
    assert window.model_box.model_combo.currentData() == "lpn50" and window.model_label.text().startswith("LPN-50")
    wait_frames(qtbot, window, 2)
    assert window.last_rendered.model == "lpn50" and not window.last_rendered.untrained


def test_errors_reach_the_status_bar_and_settings_are_remembered(qtbot, make_window, tmp_path) -> None:
    window = make_window(None, backend="torch", weights=str(tmp_path / "lpn50_missing.pth"))
    status = window.statusBar().currentMessage
    qtbot.waitUntil(lambda: "lpn50_missing.pth" in status(), timeout=30000)
    assert status().startswith("Error: ") and window.model_label.text() == "No model"
    window.open_source(57)  # no such camera
    qtbot.waitUntil(lambda: "camera 57" in status(), timeout=20000)
    assert status().startswith("Error: cannot open camera 57") and window.isVisible()
    window.open_source(str(tmp_path / "nothing.mp4"))
    qtbot.waitUntil(lambda: "nothing.mp4" in status(), timeout=10000)
    assert not window.outputs.start("record")  # nothing to record yet: says so, does not crash
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    window.state.output_dir = str(not_a_folder / "sub")
    window.open_source(str(shared_path(WALK)))
    qtbot.waitUntil(lambda: window.source_info is not None, timeout=15000)
    assert not window.outputs.start("record")
    assert "file.txt" in status() and status().startswith("Error: ") and window.isVisible()

    window.model_box.kpt_slider.setValue(55)
    window.model_box.smoothing_check.setChecked(False)
    window.model_box.det_every_spin.setValue(4)
    window.show_box.boxes_check.setChecked(False)
    window.close()
    assert_all_joined(window)

    again = make_window(None, backend="torch", model="lpn152")  # --model given on the command line
    assert again.model_box.kpt_slider.value() == 55 and not again.model_box.smoothing_check.isChecked()
    assert again.model_box.det_every_spin.value() == 4 and not again.show_box.boxes_check.isChecked()
    assert again.model_box.model_combo.currentData() == "lpn152"
    assert again.state.last_source.endswith("walk_away_720p.mp4")  # reopened when no source is given


# --- faults in the middle of a run (docs/RELIABILITY.md, "Faults") ---------------------------------------

class UnpluggableCamera(FrameSource):
    """A 30 fps 'camera' that delivers frames until ``unplug`` is set, then fails as VideoSource does."""

    is_camera, name, fps, size = True, "camera 0", 30.0, (320, 240)

    def __init__(self) -> None:
        self.unplug = threading.Event()

    def grab(self):
        if self.unplug.wait(1 / 30):
            raise SourceError("camera 0 stopped delivering frames (unplugged?)")
        return True, np.full((240, 320, 3), 40 + self.frames_read % 50, np.uint8)


def test_an_unplugged_camera_keeps_the_recording_and_can_be_reopened(qtbot, make_window, tmp_path,
                                                                     monkeypatch) -> None:
    cameras: list[UnpluggableCamera] = []
    monkeypatch.setattr(capture_module, "open_source", lambda spec: cameras.append(UnpluggableCamera()) or cameras[-1])
    window = make_window(None, threads=1)  # one ORT thread: quick on a busy machine
    window.state.output_dir = str(tmp_path / "out")
    window.open_source(0)
    wait_frames(qtbot, window, 2)
    assert window.outputs.start("record") and window.outputs.start("json") and window.outputs.start("csv")
    wait_frames(qtbot, window, 3)
    cameras[-1].unplug.set()
    status = window.statusBar().currentMessage
    qtbot.waitUntil(lambda: "stopped delivering frames" in status(), timeout=10000)
    assert status().startswith("Error: camera 0 stopped delivering frames (unplugged?); kept ")
    assert "open it again" in status() and not any(map(window.inference.writing, ("record", "json", "csv")))
    assert not window.outputs.buttons["record"].isChecked() and window.outputs.buttons["record"].text() == "Record MP4"
    [video] = (tmp_path / "out").glob("camera_poses_*.mp4")
    [export] = (tmp_path / "out").glob("camera_keypoints_*.json")
    [table] = (tmp_path / "out").glob("camera_keypoints_*.csv")
    assert str(table) in status() and len(pd.read_csv(table)) >= 3  # "none" detector: one person a frame
    cap = cv2.VideoCapture(str(video))
    assert cap.read()[0] and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= 3
    cap.release()
    assert len(json.loads(export.read_text())["frames"]) >= 3

    window.open_source(0)  # plugged in again: the same window carries on
    wait_frames(qtbot, window, 3)
    assert len(cameras) == 2 and window.source_info is not None and window.source_info.is_camera

    monkeypatch.setattr(time, "strftime", lambda *args: "20250101_120000")  # two recordings in one second
    context = window._output_context()
    first, second = (window.outputs.reserve("poses", ".mp4", context) for _ in range(2))
    assert (first.name, second.name) == ("camera_poses_20250101_120000.mp4", "camera_poses_20250101_120000_1.mp4")


def test_model_dropdown_marks_the_best_bundled_model(qtbot) -> None:
    from app.controls import ModelBox
    from app.settings import GuiState
    from lpn_core.model import list_models
    from lpn_core.weights import best_bundled_model

    box = ModelBox(GuiState())
    qtbot.addWidget(box)
    texts = {box.model_combo.itemData(i): box.model_combo.itemText(i) for i in range(box.model_combo.count())}
    best = best_bundled_model(list_models())
    assert best is not None and texts[best].endswith("(best offline)")
    assert sum(t.endswith("(best offline)") for t in texts.values()) == 1
