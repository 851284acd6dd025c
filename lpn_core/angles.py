"""Joint angles from COCO-17 keypoints: pure numpy, vectorised over people and frames.

The angle at a joint is the interior angle between its two limb segments, in degrees: 180 is a straight
limb, smaller is more bent (the convention of goniometry and of Kinovea's angle tool,
https://www.kinovea.org/help/en/measurement/angles.html). It is computed with atan2(|a × b|, a · b),
which stays accurate near 0 and 180 where arccos of the normalised dot product loses precision.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Final, Mapping

import numpy as np

from .draw import KEYPOINT_NAMES

_K = {name: i for i, name in enumerate(KEYPOINT_NAMES)}


def _joint(a: str, vertex: str, c: str) -> tuple[int, int, int]:
    return _K[a], _K[vertex], _K[c]


# name -> (end A, vertex, end C) as COCO keypoint indices; the angle is measured at the vertex.
JOINT_ANGLES: Final[Mapping[str, tuple[int, int, int]]] = MappingProxyType({
    "left_knee": _joint("left_hip", "left_knee", "left_ankle"),
    "right_knee": _joint("right_hip", "right_knee", "right_ankle"),
    "left_hip": _joint("left_shoulder", "left_hip", "left_knee"),
    "right_hip": _joint("right_shoulder", "right_hip", "right_knee"),
    "left_elbow": _joint("left_shoulder", "left_elbow", "left_wrist"),
    "right_elbow": _joint("right_shoulder", "right_elbow", "right_wrist"),
    "left_shoulder": _joint("left_hip", "left_shoulder", "left_elbow"),
    "right_shoulder": _joint("right_hip", "right_shoulder", "right_elbow"),
})
ANGLE_NAMES: Final = tuple(JOINT_ANGLES)
_ENDS = np.array(list(JOINT_ANGLES.values()), np.intp)  # (8, 3)


def joint_angles(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """keypoints (..., 17, 3): x, y px, score -> (angles, confidences), each (..., 8) in ANGLE_NAMES order.

    Angles are degrees in [0, 180], NaN where a limb segment has zero length. A confidence is the lowest
    score of the three joints that make the angle (an angle is as trustworthy as its weakest joint).
    """
    kpts = np.asarray(keypoints, np.float64)
    a, vertex, c = (kpts[..., _ENDS[:, i], :] for i in range(3))
    u, v = a[..., :2] - vertex[..., :2], c[..., :2] - vertex[..., :2]
    cross = u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
    dot = (u * v).sum(axis=-1)
    degenerate = (np.hypot(*np.moveaxis(u, -1, 0)) == 0) | (np.hypot(*np.moveaxis(v, -1, 0)) == 0)
    angles = np.where(degenerate, np.nan, np.degrees(np.arctan2(np.abs(cross), dot)))
    confidence = np.minimum(np.minimum(a[..., 2], vertex[..., 2]), c[..., 2])
    return angles.astype(np.float32), confidence.astype(np.float32)
