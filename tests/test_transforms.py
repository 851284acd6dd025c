"""Crops: box -> centre/size, affine warp, and the exact way back (LPN_SPEC §4.2, §4.4)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from lpn_core import transforms


def hrnet_affine(center: np.ndarray, size: np.ndarray, rot_deg: float, out_wh: tuple[int, int]) -> np.ndarray:
    """HRNet's get_affine_transform (three points + cv2.getAffineTransform), as the reference."""
    src_w, (dst_w, dst_h) = size[0], out_wh
    r = np.deg2rad(rot_deg)
    src_dir = np.array([-(src_w * -0.5) * np.sin(r), (src_w * -0.5) * np.cos(r)])
    dst_dir = np.array([0, dst_w * -0.5])
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0], src[1] = center, center + src_dir
    dst[0], dst[1] = [dst_w * 0.5, dst_h * 0.5], np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    third = lambda a, b: b + np.array([-(a - b)[1], (a - b)[0]])  # noqa: E731
    src[2], dst[2] = third(src[0], src[1]), third(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


def test_box_to_center_size_widens_to_aspect_then_pads() -> None:
    centers, sizes = transforms.box_to_center_size(np.array([[10, 20, 110, 420], [0, 0, 300, 100]]))
    np.testing.assert_allclose(centers, [[60, 220], [150, 50]])
    np.testing.assert_allclose(sizes, [[300 * 1.25, 400 * 1.25], [300 * 1.25, 400 * 1.25]])


@pytest.mark.parametrize("rot", [0.0, 30.0, -75.0])
def test_closed_form_affine_equals_hrnet_three_point_construction(rot: float) -> None:
    center, size = np.array([321.5, 180.25]), np.array([150.0, 200.0])
    ours = transforms.crop_affines(center, size, rot, (256, 192))[0]
    np.testing.assert_allclose(ours, hrnet_affine(center, size, rot, (192, 256)), atol=1e-3)


def test_points_round_trip_through_rotated_scaled_crops_to_1e_3_px() -> None:
    rng = np.random.default_rng(0)
    centers = rng.uniform(0, 1000, (6, 2))
    sizes = rng.uniform(20, 800, (6, 1)) * np.array([[0.75, 1.0]])
    rotations = rng.uniform(-80, 80, 6)
    points = rng.uniform(-200, 1200, (6, 17, 2))
    affines = transforms.crop_affines(centers, sizes, rotations)
    in_crop = transforms.transform_points(points, affines)
    back = transforms.transform_points(in_crop, transforms.invert_affines(affines))
    assert np.abs(back - points).max() < 1e-3
    # heatmap_to_frame is the same way back from heatmap pixels (stride 4)
    np.testing.assert_allclose(transforms.heatmap_to_frame(in_crop / 4.0, affines), points, atol=1e-3)


def test_heatmap_to_frame_matches_the_spec_formula_without_rotation() -> None:
    centers, sizes = np.array([[200.0, 300.0]]), np.array([[150.0, 200.0]])
    coords = np.array([[[24.0, 32.0], [0.0, 0.0], [47.5, 10.25]]])
    frame = transforms.heatmap_to_frame(coords, transforms.crop_affines(centers, sizes))
    expected = centers[:, None] + (coords - [24, 32]) * sizes[0, 0] / 48  # LPN_SPEC §4.4
    np.testing.assert_allclose(frame, expected, atol=1e-9)


def test_warp_crops_samples_the_box_content() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    image[100:300, 200:350] = (0, 0, 255)  # a red box: its centre must land at the crop centre
    centers, sizes = transforms.box_to_center_size(np.array([[200, 100, 350, 300]]))
    crops = transforms.warp_crops(image, transforms.crop_affines(centers, sizes))
    assert crops.shape == (1, 256, 192, 3)
    assert crops[0, 128, 96].tolist() == [0, 0, 255] and crops[0, 2, 2].tolist() == [0, 0, 0]


def test_normalize_keeps_bgr_order_with_imagenet_statistics() -> None:
    crop = np.zeros((1, 2, 2, 3), np.uint8)
    crop[..., 0] = 255  # blue channel first, normalised with the first (R) statistics, LPN_SPEC §4.3
    out = transforms.normalize(crop)
    assert out.shape == (1, 3, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0, 0], [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-5)


def test_keypoints_to_boxes_uses_confident_points_only() -> None:
    kpts = np.zeros((2, 17, 3), np.float32)
    kpts[0, :3] = [[10, 20, 0.9], [50, 80, 0.9], [30, 40, 0.9]]
    kpts[0, 3] = [500, 500, 0.1]  # below threshold: ignored
    boxes, ok = transforms.keypoints_to_boxes(kpts, threshold=0.3)
    assert ok.tolist() == [True, False]
    np.testing.assert_allclose(boxes[0], [10, 20, 50, 80])
