"""lpn_core/angles.py: interior joint angles from COCO keypoints, their confidences, batching and edge cases."""
from __future__ import annotations

import numpy as np
import pytest

from lpn_core.angles import ANGLE_NAMES, JOINT_ANGLES, joint_angles
from lpn_core.draw import KEYPOINT_NAMES


def person(**points: tuple[float, float, float]) -> np.ndarray:
    """(17, 3) keypoints, all at (0, 0) with score 1, except the named joints."""
    kpts = np.zeros((17, 3), np.float32)
    kpts[:, 2] = 1.0
    for name, value in points.items():
        kpts[KEYPOINT_NAMES.index(name)] = value
    return kpts


def angle(kpts: np.ndarray, name: str) -> tuple[float, float]:
    angles, confidence = joint_angles(kpts)
    i = ANGLE_NAMES.index(name)
    return float(angles[..., i]), float(confidence[..., i])


def test_the_eight_joints_named_in_the_brief() -> None:
    assert set(ANGLE_NAMES) == {f"{side}_{joint}" for side in ("left", "right")
                                for joint in ("knee", "hip", "elbow", "shoulder")}
    for name, (a, vertex, c) in JOINT_ANGLES.items():
        assert KEYPOINT_NAMES[vertex] == name  # measured at the joint it is named after
        assert KEYPOINT_NAMES[a].split("_")[0] == KEYPOINT_NAMES[c].split("_")[0] == name.split("_")[0]


@pytest.mark.parametrize("ankle, expected", [((100, 200), 180.0), ((150, 100), 90.0), ((100, 0), 0.0),
                                             ((50, 100), 90.0), ((150, 150), 135.0)])
def test_knee_angle_is_the_interior_angle(ankle: tuple[float, float], expected: float) -> None:
    kpts = person(left_hip=(100, 0, 0.9), left_knee=(100, 100, 0.6), left_ankle=(*ankle, 0.8))
    value, confidence = angle(kpts, "left_knee")
    assert value == pytest.approx(expected, abs=1e-3)
    assert confidence == pytest.approx(0.6)  # the weakest of the three joints


def test_batched_over_frames_and_people_and_nan_for_a_zero_length_limb() -> None:
    bent = person(right_shoulder=(0, 0, 1), right_elbow=(0, 10, 1), right_wrist=(10, 10, 1))
    folded = person(right_shoulder=(0, 0, 1), right_elbow=(0, 10, 1), right_wrist=(0, 10, 1))  # wrist on elbow
    angles, confidence = joint_angles(np.stack([[bent, folded]] * 3))  # (frames, people, 17, 3)
    assert angles.shape == confidence.shape == (3, 2, len(ANGLE_NAMES))
    i = ANGLE_NAMES.index("right_elbow")
    assert np.allclose(angles[:, 0, i], 90.0) and np.isnan(angles[:, 1, i]).all()
