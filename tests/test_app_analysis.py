"""app/analysis.py: the joint-angle dock follows a chosen person (id box, click, automatic), keeps 10 s of
curves, greys out weak joints, redraws at most 10 times a second and does nothing while hidden."""
from __future__ import annotations

import time

import numpy as np
import pytest

from app.analysis import HISTORY_S, REFRESH_HZ, AnalysisDock, follow, person_at
from app.workers import Rendered
from lpn_core.angles import ANGLE_NAMES
from lpn_core.draw import KEYPOINT_NAMES
from lpn_core.types import FrameResult, Pose

K = {name: i for i, name in enumerate(KEYPOINT_NAMES)}


def person(track_id: int, x0: float, knee_bend: float = 0.0, score: float = 0.9, size: float = 1.0) -> Pose:
    """A standing person at x0 whose left ankle is pushed forward by ``knee_bend`` px (bending the knee)."""
    kpts = np.zeros((17, 3), np.float32)
    for name, (x, y) in {"left_shoulder": (0, 0), "right_shoulder": (20, 0), "left_elbow": (0, 40),
                         "right_elbow": (20, 40), "left_wrist": (0, 80), "right_wrist": (20, 80),
                         "left_hip": (0, 100), "right_hip": (20, 100), "left_knee": (0, 150),
                         "right_knee": (20, 150), "left_ankle": (knee_bend, 200), "right_ankle": (20, 200)}.items():
        kpts[K[name]] = (x0 + x * size, 10 + y * size, score)
    box = np.array([x0 - 10, 0, x0 + 30 * size, 220 * size], np.float32)
    return Pose(kpts, box, 0.8, track_id=track_id)


def rendered(poses: list[Pose], index: int = 0, infer_ms: float = 20.0) -> Rendered:
    frame = np.zeros((480, 640, 3), np.uint8)
    times = {"detect": 10.0, "infer": infer_ms, "draw": 1.0}
    return Rendered(FrameResult(index, frame, poses, times), frame, 25.0, times, "lpn50", "onnx", False)


@pytest.fixture
def dock(qtbot) -> AnalysisDock:
    widget = AnalysisDock(kpt_thr=0.3)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_picking_people() -> None:
    small, large = person(1, 50), person(2, 300, size=1.5)
    assert person_at([small, large], 60, 100) == 1 and person_at([small, large], 10, 400) is None
    assert follow([small, large], 0, None) is large  # automatic: the largest
    assert follow([small, large], 0, 1) is small  # ...but stays with the one it follows while in view
    assert follow([small, large], 2, 1) is large and follow([small], 2, 1) is None


def test_numbers_and_curves_of_the_chosen_person(dock: AnalysisDock) -> None:
    dock.person_spin.setValue(1)
    for i, bend in enumerate((0.0, 50.0)):  # the left knee bends from straight to 135 degrees
        dock.add(rendered([person(1, 50, knee_bend=bend), person(2, 300, size=1.5)], i), now=100.0 + i / 10)
    dock.refresh(now=100.2)
    angle, score = (label.text() for label in dock.value_labels["left_knee"])
    assert (angle, score) == ("135°", "0.90") and dock.following_label.text() == "following #1"
    x, y = dock.curves["left_knee"].getData()
    assert np.allclose(x, [-0.2, -0.1]) and np.allclose(y, [180.0, 135.0], atol=0.01)
    assert np.allclose(dock.curves["infer"].getData()[1], [20.0, 20.0])


def test_weak_joints_are_grey_and_leave_gaps(dock: AnalysisDock) -> None:
    dock.add(rendered([person(1, 50, score=0.9)]), now=10.0)
    dock.add(rendered([person(1, 50, score=0.1)], 1), now=10.1)
    dock.refresh(now=10.1)
    y = dock.curves["left_knee"].getData()[1]
    assert y[0] == pytest.approx(180.0) and np.isnan(y[1])
    assert "gray" in dock.value_labels["left_knee"][1].styleSheet()


def test_keeps_ten_seconds(dock: AnalysisDock) -> None:
    for i in range(130):  # 13 s at 10 frames a second
        dock.add(rendered([person(1, 50)], i), now=i / 10)
    dock.refresh(now=12.9)
    x = dock.curves["right_knee"].getData()[0]
    assert -HISTORY_S <= x.min() <= -HISTORY_S + 0.11 and x.max() == 0.0  # 12.9 s of samples, the last 10 s kept


def test_click_in_the_window_follows_that_person(qtbot, dock: AnalysisDock) -> None:
    assert dock.pick_at([person(1, 50), person(7, 300)], 310.0, 100.0) == 7
    assert dock.person_spin.value() == 7 and dock.pick_at([person(1, 50)], 600.0, 10.0) is None
    assert dock.person_spin.value() == 7


def test_redraws_at_most_ten_times_a_second_and_nothing_while_hidden(qtbot, dock: AnalysisDock) -> None:
    start, started_at = dock.redraws, time.monotonic()
    for frame in range(120):  # frames arrive far faster than the plots redraw
        dock.add(rendered([person(1, 50)], frame))
        qtbot.wait(1000 // 60)
    redraws, elapsed = dock.redraws - start, time.monotonic() - started_at
    assert 0 < redraws <= REFRESH_HZ * elapsed + 1, (redraws, elapsed)
    dock.hide()
    assert not dock.timer.isActive()
    dock.add(rendered([person(1, 50, knee_bend=80)], 999))
    dock.show()
    qtbot.wait(3 * 1000 // REFRESH_HZ)
    assert dock.curves["left_knee"].getData()[1][-1] == pytest.approx(180.0)  # the hidden frame left no sample


def test_the_eight_angles_are_listed(dock: AnalysisDock) -> None:
    assert set(dock.value_labels) == set(ANGLE_NAMES)


def test_a_person_briefly_out_of_view_keeps_their_curves(dock: AnalysisDock) -> None:
    dock.person_spin.setValue(3)
    dock.add(rendered([person(3, 50)]), now=1.0)
    dock.add(rendered([person(4, 300)], 1), now=1.1)  # #3 hidden for a frame
    dock.refresh(now=1.1)
    assert dock.following_label.text() == "following #3 (not in view)"
    assert dock.value_labels["left_knee"][0].text() == "–"
    dock.add(rendered([person(3, 50, knee_bend=50)], 2), now=1.2)
    dock.refresh(now=1.2)
    assert len(dock.curves["left_knee"].getData()[0]) == 2 and dock.following_label.text() == "following #3"
