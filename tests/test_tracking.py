"""Track ids and One-Euro smoothing: unit facts, then the real walking video with real detector boxes."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import shared_path
from lpn_core.detector import YoloDetector
from lpn_core.estimator import build_estimator
from lpn_core.pipeline import instance_scores
from lpn_core.tracking import OneEuroFilter, Tracker, box_iou, keypoint_oks
from lpn_core.types import Pose

FRAMES = 45  # of walk_away_720p.mp4 (1.5 s at 30 fps)


def pose_at(x: float, y: float, size: float = 100.0, score: float = 0.9) -> Pose:
    kpts = np.zeros((17, 3), np.float32)
    kpts[:, 0] = x + np.linspace(-size / 4, size / 4, 17)
    kpts[:, 1] = y + np.linspace(-size / 2, size / 2, 17)
    kpts[:, 2] = score
    return Pose(keypoints=kpts, box=np.array([x - size / 2, y - size, x + size / 2, y + size], np.float32), score=score)


def test_box_iou_identical_disjoint_and_half() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10]], np.float32)
    assert np.allclose(box_iou(a, b), [[1.0, 0.0, 1 / 3]])


def test_oks_is_one_for_identical_poses_and_falls_with_distance() -> None:
    p, q = pose_at(100, 100), pose_at(130, 100)
    area = np.array([200.0 * 100.0])
    assert keypoint_oks(p.keypoints[None], p.keypoints[None], area)[0, 0] == pytest.approx(1.0)
    assert keypoint_oks(p.keypoints[None], q.keypoints[None], area)[0, 0] < 0.5
    low = pose_at(100, 100, score=0.1)
    assert keypoint_oks(low.keypoints[None], low.keypoints[None], area)[0, 0] == 0.0  # nothing confident


def test_one_euro_passes_constants_and_lags_a_step() -> None:
    filt = OneEuroFilter()
    for i in range(10):
        assert np.allclose(filt(np.full((17, 2), 5.0), i / 30), 5.0)
    after_step = filt(np.full((17, 2), 15.0), 10 / 30, scale=100.0)
    assert 5.0 < after_step[0, 0] < 15.0
    for i in range(11, 200):
        out = filt(np.full((17, 2), 15.0), i / 30, scale=100.0)
    assert np.allclose(out, 15.0, atol=0.05)


def test_one_euro_is_timestamp_aware() -> None:
    """The same jump is followed further when more time has passed; a repeated timestamp changes nothing."""
    outs = []
    for dt in (1 / 60, 1 / 10):
        filt = OneEuroFilter(beta=0.0)
        filt(np.zeros(2), 0.0)
        outs.append(filt(np.ones(2), dt)[0])
    assert outs[0] < outs[1]
    filt = OneEuroFilter()
    first = filt(np.zeros(2), 1.0)
    assert np.array_equal(filt(np.ones(2), 1.0), first)


def test_tracker_ids_follow_people_not_list_order() -> None:
    tracker = Tracker(smoothing=False)
    a, b = tracker.update([pose_at(100, 200), pose_at(500, 200)], 0.0)
    assert (a.track_id, b.track_id) == (1, 2)
    swapped = tracker.update([pose_at(505, 202), pose_at(103, 199)], 1 / 30)
    assert [p.track_id for p in swapped] == [2, 1]
    newcomer = tracker.update([pose_at(103, 199), pose_at(505, 202), pose_at(900, 200)], 2 / 30)
    assert [p.track_id for p in newcomer] == [1, 2, 3]


def test_tracker_forgets_tracks_missing_too_long_and_reset_restarts_ids() -> None:
    tracker = Tracker(max_missing=2, smoothing=False)
    tracker.update([pose_at(100, 200)], 0.0)
    for i in range(3):
        tracker.update([], (i + 1) / 30)
    assert tracker.update([pose_at(100, 200)], 0.2)[0].track_id == 2
    tracker.reset()
    assert tracker.update([pose_at(100, 200)], 0.0)[0].track_id == 1


def test_smoothing_off_returns_raw_keypoints() -> None:
    tracker = Tracker(smoothing=False)
    tracker.update([pose_at(100, 200)], 0.0)
    moved = pose_at(110, 200)
    assert np.array_equal(tracker.update([moved], 1 / 30)[0].keypoints, moved.keypoints)


@pytest.fixture(scope="module")
def walk_poses() -> list[list[Pose]]:
    """Raw (unsmoothed, untracked) poses of the first FRAMES frames: shared detector + untrained LPN-50."""
    detector = YoloDetector(shared_path("detectors/yolo11n_int8_openvino_model"))
    estimator = build_estimator("lpn50", "untrained", threads=2)
    cap = cv2.VideoCapture(str(shared_path("videos/walk_away_720p.mp4")))
    frames = []
    for _ in range(FRAMES):
        ok, frame = cap.read()
        assert ok
        found = detector(frame)
        kpts = estimator(frame, found.boxes)
        scores = instance_scores(found.scores, kpts)
        frames.append([Pose(k, b, float(s)) for k, b, s in zip(kpts, found.boxes, scores)])
    cap.release()
    return frames


def second_difference(track: np.ndarray) -> float:
    """Mean |x[t+1] - 2 x[t] + x[t-1]| over time, joints and x/y: frame-to-frame jitter in px."""
    return float(np.abs(track[2:] - 2 * track[1:-1] + track[:-2]).mean())


def run_tracker(frames: list[list[Pose]], smoothing: bool) -> tuple[list[set[int]], np.ndarray]:
    tracker = Tracker(smoothing=smoothing)
    ids, track = [], []
    for i, poses in enumerate(frames):
        out = tracker.update(poses, i / 30.0)
        ids.append({p.track_id for p in out})
        track.append(out[0].keypoints[:, :2])
    return ids, np.stack(track)


def test_walking_person_keeps_one_id(walk_poses: list[list[Pose]]) -> None:
    assert all(len(poses) == 1 for poses in walk_poses), "the shared detector should see exactly the walker"
    ids, _ = run_tracker(walk_poses, smoothing=True)
    assert all(frame_ids == {1} for frame_ids in ids)


def test_smoothing_lowers_jitter_on_real_video(walk_poses: list[list[Pose]]) -> None:
    _, raw = run_tracker(walk_poses, smoothing=False)
    _, smooth = run_tracker(walk_poses, smoothing=True)
    ratio = second_difference(smooth) / second_difference(raw)
    assert ratio < 0.75, f"smoothed/raw jitter {ratio:.2f}"  # measured 0.60 (60 frames)
    # smoothing must not drag the skeleton off the person: mean lag stays below 5% of the box height
    height = float(np.mean([p[0].box[3] - p[0].box[1] for p in walk_poses]))
    assert np.abs(smooth - raw).mean() < 0.05 * height
