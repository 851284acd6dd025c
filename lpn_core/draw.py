"""Overlay on numpy BGR images with OpenCV: COCO skeleton, boxes, ids, the HUD readout (FPS, latency, weights).

Shared by the CLI and the GUI; no Qt here. Left limbs orange, right limbs blue, centre green.
"""
from __future__ import annotations

import functools
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
AA_MAX_PEOPLE: Final = 5  # anti-aliased limbs up to this many people (AA lines cost ~5x plain ones)
HUD_TEXT_PX: Final = 27  # height of "Ag" in FONT at scale 1.0
HUD_TEXT_SHARE: Final = 0.024  # readout text height / frame height: three lines fill about 14 %
HUD_MIN_SCALE: Final = 0.3  # smaller Hershey text is unreadable
HUD_MAX_SHARE: Final = 0.15  # the readout covers at most this share of the frame's height


def keypoint_side(index: int) -> int:
    """-1 right, 0 centre (nose), +1 left: COCO's odd indices are left, even (> 0) right."""
    return 0 if index == 0 else (1 if index % 2 else -1)


def limb_color(a: int, b: int) -> tuple[int, int, int]:
    """Left limb, right limb, or centre (links joining both sides, and the face)."""
    side_a, side_b = keypoint_side(a), keypoint_side(b)
    if side_a == side_b != 0:
        return LEFT if side_a > 0 else RIGHT
    return CENTRE


COLORS: Final = (LEFT, RIGHT, CENTRE)
_LINKS = np.array(SKELETON, np.intp)  # (19, 2)
_LINK_COLOR = np.array([COLORS.index(limb_color(a, b)) for a, b in SKELETON])  # (19,) index into COLORS
_JOINT_COLOR = np.array([COLORS.index((CENTRE, LEFT, RIGHT)[keypoint_side(i)]) for i in range(17)])  # (17,)


def _line_width(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / 480))


def draw_poses(image: np.ndarray, poses: Iterable[Pose], kpt_thr: float = 0.3, show_boxes: bool = True,
               show_ids: bool = True) -> np.ndarray:
    """A new image with each pose's skeleton (joints above ``kpt_thr`` only), box and id.

    One OpenCV call per colour for all people: limbs are polylines, joints are zero-length polylines
    (a thick line's round caps make a disc, white-rimmed by a wider white disc underneath). Limbs are
    anti-aliased for up to AA_MAX_PEOPLE people; in a crowd they are not, which halves the drawing time
    (benchmarks/bench_overlay.py).
    """
    canvas = image.copy()
    poses = list(poses)
    if not poses:
        return canvas
    width = _line_width(canvas)
    kpts = np.stack([np.asarray(p.keypoints, np.float32) for p in poses])  # (P, 17, 3)
    points = np.round(kpts[..., :2]).astype(np.int32)
    visible = kpts[..., 2] >= kpt_thr
    links = visible[:, _LINKS[:, 0]] & visible[:, _LINKS[:, 1]]  # (P, 19)
    person, link = np.nonzero(links)
    segments = np.stack([points[person, _LINKS[link, 0]], points[person, _LINKS[link, 1]]], axis=1)  # (L, 2, 2)
    limb_line = cv2.LINE_AA if len(poses) <= AA_MAX_PEOPLE else cv2.LINE_8
    for c, color in enumerate(COLORS):
        _polylines(canvas, segments[_LINK_COLOR[link] == c], color, width + 1, limb_line)
    person, joint = np.nonzero(visible)
    dots = np.repeat(points[person, joint][:, None, :], 2, axis=1)  # zero-length segments (J, 2, 2)
    _polylines(canvas, dots, (255, 255, 255), 2 * width + 5, cv2.LINE_8)  # anti-aliased discs cost 5x
    for c, color in enumerate(COLORS):
        _polylines(canvas, dots[_JOINT_COLOR[joint] == c], color, 2 * width + 3, cv2.LINE_8)
    boxes = np.round(np.stack([np.asarray(p.box, np.float32) for p in poses])).astype(np.int32)
    if show_boxes:
        corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 4, 2)
        cv2.polylines(canvas, list(corners), True, BOX, width, cv2.LINE_8)  # axis-aligned: nothing to smooth
    if show_ids:
        for pose, (x1, y1, _, _) in zip(poses, boxes):
            if pose.track_id is not None:
                _label(canvas, f"#{pose.track_id} {pose.score:.2f}", (int(x1), max(int(y1) - 4, 12)), width, BOX)
    return canvas


def _polylines(image: np.ndarray, segments: np.ndarray, color: Sequence[int], thickness: int, line_type: int) -> None:
    if len(segments):
        cv2.polylines(image, list(segments), False, tuple(color), thickness, line_type)


def _label(image: np.ndarray, text: str, origin: tuple[int, int], width: int,
           background: Sequence[int] = (0, 0, 0), color: Sequence[int] = (0, 0, 0)) -> None:
    scale = 0.4 + 0.15 * width
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    x, y = origin
    cv2.rectangle(image, (x, y - th - base), (x + tw + 4, y + base), tuple(background), -1)
    cv2.putText(image, text, (x + 2, y), FONT, scale, tuple(color), 1, cv2.LINE_AA)


def stats_lines(fps: float | None, times_ms: dict[str, float], people: int, weights_label: str = "") -> list[str]:
    """The readout as text: FPS, latency and people; per-stage ms; the weights in use (empty lines dropped)."""
    total = sum(times_ms.values())
    head = f"FPS {fps:5.1f}" if fps else "FPS   -  "
    stages = " ".join(f"{name} {times_ms[name]:.0f}" for name in STAGES if name in times_ms)
    lines = [f"{head} | {total:.0f} ms/frame | people {people}", f"{stages} ms" if stages else "", weights_label]
    return [line for line in lines if line]


@functools.lru_cache(maxsize=16)
def hud_metrics(height: int) -> tuple[float, int]:
    """Font scale and line height (px) of the readout on a frame ``height`` px high: the text is a fixed share
    of the frame's height (HUD_TEXT_SHARE), so on screen it grows and shrinks with the displayed frame."""
    scale = max(HUD_MIN_SCALE, height * HUD_TEXT_SHARE / HUD_TEXT_PX)
    text_h = cv2.getTextSize("Ag", FONT, scale, 1)[0][1]
    return scale, int(round(text_h * 1.7)) + 1


def draw_stats(image: np.ndarray, fps: float | None, times_ms: dict[str, float], people: int,
               untrained: bool = False, weights_label: str = "") -> np.ndarray:
    """FPS/latency readout in the top-left corner (in place; also returned), at most HUD_MAX_SHARE of the
    frame's height, ending with the weights in use (e.g. "lpn50 project-trained, AP 0.31"); a red
    "UNTRAINED WEIGHTS" banner along the top when the model runs with random weights."""
    scale, line_h = hud_metrics(image.shape[0])
    lines = stats_lines(fps, times_ms, people, weights_label)
    while len(lines) > 1 and hud_height(image.shape[0], len(lines)) > HUD_MAX_SHARE * image.shape[0]:
        lines.pop()  # a small frame: the weights, then the stages, give way (the status bar has them too)
    box_w = min(image.shape[1], max(cv2.getTextSize(line, FONT, scale, 1)[0][0] for line in lines) + 12)
    y0 = draw_untrained_banner(image) if untrained else 0
    region = image[y0:y0 + line_h * len(lines) + line_h // 3, :box_w]
    np.right_shift(region, 1, out=region)  # darken to half for contrast
    for i, line in enumerate(lines):
        cv2.putText(image, line, (6, y0 + line_h * (i + 1) - line_h // 5), FONT, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return image


def hud_height(image_height: int, lines: int = 3) -> int:
    """Pixels the readout of ``lines`` lines covers on a frame ``image_height`` px high (banner excluded)."""
    _, line_h = hud_metrics(image_height)
    return line_h * lines + line_h // 3


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
    cv2.rectangle(image, (0, 0), (image.shape[1] - 1, height - 1), WARN, -1)  # corners are inclusive
    cv2.putText(image, text, (max(4, (image.shape[1] - tw) // 2), th + 5), FONT, scale, (255, 255, 255),
                max(1, width // 2), cv2.LINE_AA)
    return height
