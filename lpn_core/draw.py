"""Overlay on numpy BGR images with OpenCV (anti-aliased): COCO skeleton, boxes, ids, FPS/latency.

Shared by the CLI and the GUI; no Qt here. Left limbs orange, right limbs blue, centre green.
"""
from __future__ import annotations

from typing import Final, Iterable, Sequence

import cv2
import numpy as np

from .types import Pose

KEYPOINT_NAMES: Final = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
# COCO's 19-link skeleton (person_keypoints categories), 0-based
SKELETON: Final = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9), (8, 10),
    (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
LEFT: Final = (51, 153, 255)  # BGR orange
RIGHT: Final = (255, 128, 0)  # BGR blue
CENTRE: Final = (0, 200, 0)  # BGR green
BOX: Final = (0, 215, 255)
WARN: Final = (0, 0, 230)
FONT: Final = cv2.FONT_HERSHEY_SIMPLEX
STAGES: Final = ("detect", "crop", "infer", "decode", "track", "draw")


def keypoint_side(index: int) -> int:
    """-1 right, 0 centre (nose), +1 left: COCO's odd indices are left, even (> 0) right."""
    return 0 if index == 0 else (1 if index % 2 else -1)


def limb_color(a: int, b: int) -> tuple[int, int, int]:
    """Left limb, right limb, or centre (links joining both sides, and the face)."""
    side_a, side_b = keypoint_side(a), keypoint_side(b)
    if side_a == side_b != 0:
        return LEFT if side_a > 0 else RIGHT
    return CENTRE


def _line_width(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / 480))


def draw_poses(image: np.ndarray, poses: Iterable[Pose], kpt_thr: float = 0.3, show_boxes: bool = True,
               show_ids: bool = True) -> np.ndarray:
    """A new image with each pose's skeleton (joints above ``kpt_thr`` only), box and id."""
    canvas = image.copy()
    width = _line_width(canvas)
    for pose in poses:
        kpts = np.asarray(pose.keypoints, np.float64)
        visible = kpts[:, 2] >= kpt_thr
        pts = np.round(kpts[:, :2]).astype(np.int32)
        for a, b in SKELETON:
            if visible[a] and visible[b]:
                cv2.line(canvas, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]), limb_color(a, b),
                         width + 1, cv2.LINE_AA)
        for i in np.flatnonzero(visible):
            color = (LEFT, CENTRE, RIGHT)[1 - keypoint_side(int(i))]
            cv2.circle(canvas, tuple(int(v) for v in pts[i]), width + 2, color, -1, cv2.LINE_AA)
            cv2.circle(canvas, tuple(int(v) for v in pts[i]), width + 2, (255, 255, 255), 1, cv2.LINE_AA)
        x1, y1, x2, y2 = (int(round(v)) for v in pose.box)
        if show_boxes:
            cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX, width, cv2.LINE_AA)
        if show_ids and pose.track_id is not None:
            _label(canvas, f"#{pose.track_id} {pose.score:.2f}", (x1, max(y1 - 4, 12)), width, BOX)
    return canvas


def _label(image: np.ndarray, text: str, origin: tuple[int, int], width: int,
           background: Sequence[int] = (0, 0, 0), color: Sequence[int] = (0, 0, 0)) -> None:
    scale = 0.4 + 0.15 * width
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    x, y = origin
    cv2.rectangle(image, (x, y - th - base), (x + tw + 4, y + base), tuple(background), -1)
    cv2.putText(image, text, (x + 2, y), FONT, scale, tuple(color), 1, cv2.LINE_AA)


def stats_lines(fps: float | None, times_ms: dict[str, float], people: int, weights_label: str = "") -> list[str]:
    """The readout as text: FPS + latency, per-stage ms, people, and the weights in use."""
    total = sum(times_ms.values())
    head = f"FPS {fps:5.1f}" if fps else "FPS   -  "
    stages = " ".join(f"{name} {times_ms[name]:.0f}" for name in STAGES if name in times_ms)
    return [f"{head} | {total:.0f} ms/frame", f"{stages} ms" if stages else "", f"people {people}", weights_label]


def draw_stats(image: np.ndarray, fps: float | None, times_ms: dict[str, float], people: int,
               untrained: bool = False, weights_label: str = "") -> np.ndarray:
    """FPS/latency readout in the top-left corner (in place; also returned), ending with the weights in
    use (e.g. "lpn50 project-trained, AP 0.31"); a red "UNTRAINED WEIGHTS" banner along the top when the
    model runs with random weights."""
    width = _line_width(image)
    scale = 0.4 + 0.15 * width
    line_h = int(cv2.getTextSize("Ag", FONT, scale, 1)[0][1] * 1.8) + 2
    lines = [line for line in stats_lines(fps, times_ms, people, weights_label) if line]
    box_w = max(cv2.getTextSize(line, FONT, scale, 1)[0][0] for line in lines) + 12
    y0 = draw_untrained_banner(image) if untrained else 0
    region = image[y0:y0 + line_h * len(lines) + 6, :box_w]
    region[:] = (region * 0.4).astype(image.dtype)  # darken for contrast
    for i, line in enumerate(lines):
        cv2.putText(image, line, (6, y0 + line_h * (i + 1)), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def draw_untrained_banner(image: np.ndarray) -> int:
    """Full-width red "UNTRAINED WEIGHTS" strip along the top (in place); returns its height in px."""
    width = _line_width(image)
    text = "UNTRAINED WEIGHTS - keypoints are meaningless (tests/timing only)"
    scale = 0.45 + 0.2 * width
    (tw, th), base = cv2.getTextSize(text, FONT, scale, max(1, width // 2))
    if tw > image.shape[1] - 8:  # narrow image: shorten rather than clip
        text = "UNTRAINED WEIGHTS"
        (tw, th), base = cv2.getTextSize(text, FONT, scale, max(1, width // 2))
    height = th + base + 10
    cv2.rectangle(image, (0, 0), (image.shape[1], height), WARN, -1)
    cv2.putText(image, text, (max(4, (image.shape[1] - tw) // 2), th + 5), FONT, scale, (255, 255, 255),
                max(1, width // 2), cv2.LINE_AA)
    return height
