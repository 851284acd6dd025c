"""Overlay: skeleton topology and colours, thresholds, boxes/ids, the stats readout and the untrained banner."""
from __future__ import annotations

import numpy as np
import pytest

from lpn_core.draw import (CENTRE, HUD_MAX_SHARE, KEYPOINT_NAMES, LEFT, RIGHT, SKELETON, draw_poses, draw_stats,
                           draw_untrained_banner, limb_color, stats_lines)
from lpn_core.types import Pose


def standing_pose(score: float = 0.9) -> Pose:
    kpts = np.zeros((17, 3), np.float32)
    kpts[:, 0] = [160, 155, 165, 150, 170, 140, 180, 130, 190, 125, 195, 145, 175, 145, 175, 145, 175]
    kpts[:, 1] = [40, 35, 35, 38, 38, 70, 70, 100, 100, 130, 130, 140, 140, 180, 180, 220, 220]
    kpts[:, 2] = score
    return Pose(keypoints=kpts, box=np.array([115, 20, 205, 230], np.float32), score=score, track_id=7)


def test_skeleton_is_coco() -> None:
    assert len(KEYPOINT_NAMES) == 17 and len(SKELETON) == 19
    assert all(0 <= a < 17 and 0 <= b < 17 for a, b in SKELETON)


def test_limb_colours_left_right_centre() -> None:
    assert limb_color(5, 7) == LEFT  # left shoulder - left elbow
    assert limb_color(6, 8) == RIGHT
    assert limb_color(5, 6) == CENTRE  # shoulders
    assert limb_color(0, 1) == CENTRE  # nose - left eye


def test_draw_poses_returns_new_image_and_draws_confident_joints() -> None:
    image = np.zeros((240, 320, 3), np.uint8)
    out = draw_poses(image, [standing_pose()])
    assert out.shape == image.shape and out is not image and not image.any()
    assert out[100, 130].any()  # left elbow
    assert out[20:22, 115:205].any()  # the box's top edge (and id label above it)


def test_joints_below_threshold_are_not_drawn() -> None:
    image = np.zeros((240, 320, 3), np.uint8)
    out = draw_poses(image, [standing_pose(score=0.1)], kpt_thr=0.3, show_boxes=False, show_ids=False)
    assert not out.any()


def test_stats_readout_and_untrained_banner() -> None:
    times = {"detect": 20.0, "crop": 1.0, "infer": 25.0, "decode": 1.0, "track": 0.2, "draw": 1.0}
    lines = stats_lines(20.0, times, 2)
    assert lines[0].startswith("FPS  20.0") and "48 ms/frame" in lines[0] and "people 2" in lines[0]
    plain = np.full((360, 640, 3), 128, np.uint8)
    draw_stats(plain, 20.0, times, 2, untrained=False)
    assert (plain[5, 630] == 128).all()  # no banner
    assert not (plain[:60, :120] == 128).all()  # the readout is there
    flagged = np.full((360, 640, 3), 128, np.uint8)
    assert draw_stats(flagged, None, {}, 0, untrained=True) is flagged  # in place
    b, g, r = flagged[2, 2]
    assert r > 200 and g < 50 and b < 50  # the red UNTRAINED WEIGHTS strip along the top


def test_banner_alone_fits_narrow_images() -> None:
    narrow = np.zeros((120, 160, 3), np.uint8)
    height = draw_untrained_banner(narrow)
    assert 0 < height < 60 and narrow[1, 1, 2] > 200 and not narrow[height + 2:].any()


def test_limbs_and_joints_take_their_side_colours() -> None:
    out = draw_poses(np.zeros((240, 320, 3), np.uint8), [standing_pose()], show_boxes=False, show_ids=False)
    assert tuple(out[160, 145]) == LEFT  # on the left thigh, between hip (145, 140) and knee (145, 180)
    assert tuple(out[160, 175]) == RIGHT
    assert tuple(out[70, 160]) == CENTRE  # the shoulder line
    assert tuple(out[180, 145]) == LEFT and tuple(out[180, 175]) == RIGHT  # the knees' discs
    assert tuple(out[180, 145 - 4]) == (255, 255, 255)  # each joint has a white rim


def hud_rows(height: int, width: int = 1280, untrained: bool = False) -> int:
    """Rows the readout darkens on a mid-gray frame (the last darkened row + 1)."""
    frame = np.full((height, width, 3), 200, np.uint8)
    times = {"detect": 20.0, "crop": 1.0, "infer": 25.0, "decode": 1.0, "track": 0.2, "draw": 1.0}
    draw_stats(frame, 20.0, times, 3, untrained=untrained, weights_label="lpn50 project-trained, AP 0.07")
    darkened = np.flatnonzero((frame[:, width - 1 if untrained else 0] < 200).any(axis=1))
    return int(darkened.max()) + 1 if len(darkened) else 0


@pytest.mark.parametrize("height", [240, 360, 480, 720, 1080, 2160])
def test_hud_scales_with_the_frame_and_stays_under_its_share(height: int) -> None:
    rows = hud_rows(height, width=height * 16 // 9)
    assert 0 < rows <= HUD_MAX_SHARE * height, f"the readout covers {rows} of {height} rows"
    if height >= 480:
        assert rows >= 0.08 * height  # it grows with the frame: readable when the frame is shown large
