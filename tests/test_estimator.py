"""PoseEstimator geometry: boxes in, keypoints in image pixels out, one batched backend call."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lpn_core import LpnError, PoseEstimator, build_estimator, codec, transforms
from lpn_core.estimator import small_crop_size
from lpn_core.model import create_model


class TargetBackend:
    """Fake backend: heatmaps with σ=2 peaks where the known joints fall in each crop."""

    name = "fake"

    def __init__(self, joints_image: np.ndarray, affines: np.ndarray) -> None:
        self.crop_joints = transforms.transform_points(joints_image, affines)
        self.calls: list[int] = []

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        self.calls.append(len(crops))
        heatmaps, _ = codec.encode(self.crop_joints, np.ones(self.crop_joints.shape[:2]))
        return heatmaps


def test_keypoints_come_back_in_image_pixels_within_the_stride(shared) -> None:
    image = cv2.imread(str(shared("coco_val2017/images/000000000785.jpg")))
    boxes = np.array([[280.0, 40.0, 500.0, 420.0], [20.0, 30.0, 140.0, 200.0], [300, 300, 330, 340]])
    rng = np.random.default_rng(0)
    lo, hi = boxes[:, None, :2], boxes[:, None, 2:]
    joints = lo + rng.uniform(0.1, 0.9, (3, 17, 2)) * (hi - lo)
    centers, sizes = transforms.box_to_center_size(boxes)
    backend = TargetBackend(joints, transforms.crop_affines(centers, sizes))
    keypoints = PoseEstimator(backend)(image, boxes)
    assert backend.calls == [3]  # all crops of the frame in one call
    assert keypoints.shape == (3, 17, 3)
    # Targets are rounded to the 4-px heatmap grid; decoding adds at most a quarter step back.
    stride_px = sizes[:, 0] / 48
    err = np.linalg.norm(keypoints[..., :2] - joints, axis=2)
    assert (err <= (0.5 * np.sqrt(2) + 0.25 * np.sqrt(2)) * stride_px[:, None] + 1e-6).all()
    np.testing.assert_allclose(keypoints[..., 2], 1.0)


def test_flip_test_doubles_the_batch_and_keeps_symmetric_joints(shared) -> None:
    image = cv2.imread(str(shared("coco_val2017/images/000000000785.jpg")))
    box = np.array([[280.0, 40.0, 500.0, 420.0]])
    centers, sizes = transforms.box_to_center_size(box)
    affines = transforms.crop_affines(centers, sizes)
    # put the nose on the crop's vertical axis: its mirror is itself (up to the 1-px shift)
    nose = transforms.transform_points(np.array([[[96.0, 60.0]] * 17]), transforms.invert_affines(affines))

    class MirrorAware(TargetBackend):
        def __call__(self, crops: np.ndarray) -> np.ndarray:
            self.calls.append(len(crops))
            heatmaps, _ = codec.encode(np.repeat(self.crop_joints, len(crops), 0), np.ones((len(crops), 17)))
            return heatmaps

    backend = MirrorAware(nose, affines)
    keypoints = PoseEstimator(backend, flip_test=True)(image, box)
    assert backend.calls == [2]
    assert np.abs(keypoints[0, 0, :2] - nose[0, 0]).max() < sizes[0, 0] / 48 * 1.5


def test_crop_sizes_are_height_then_width(shared) -> None:
    """One convention across lpn_core (docs/CONTRACTS.md): input_size (128, 96) means 128 rows, 96 columns."""
    image = cv2.imread(str(shared("coco_val2017/images/000000000785.jpg")))
    box = np.array([[280.0, 40.0, 500.0, 420.0]])
    affines = transforms.crop_affines(*transforms.box_to_center_size(box), 0.0, (128, 96))
    joints = transforms.transform_points(np.array([[[48.0, 30.0]] * 17]), transforms.invert_affines(affines))
    seen: list[tuple[int, ...]] = []

    def backend(crops: np.ndarray) -> np.ndarray:
        seen.append(crops.shape)
        crop_joints = transforms.transform_points(joints, affines)  # (30, 48) px of the 128 x 96 crop
        return codec.encode(crop_joints, np.ones((1, 17)), heatmap_size=(32, 24))[0]

    keypoints = PoseEstimator(backend, input_size=(128, 96))(image, box)
    assert seen == [(1, 3, 128, 96)]
    assert np.abs(keypoints[0, :, :2] - joints[0]).max() < (box[0, 3] - box[0, 1]) * 1.25 / 32


def test_small_people_run_at_half_the_crop_size_in_their_own_batch(shared) -> None:
    image = cv2.imread(str(shared("coco_val2017/images/000000000785.jpg")))
    boxes = np.array([[280.0, 40.0, 500.0, 420.0], [20.0, 30.0, 60.0, 90.0], [300, 300, 330, 340]])
    joints = boxes[:, None, :2] + np.array([0.5, 0.3]) * (boxes[:, None, 2:] - boxes[:, None, :2])
    joints = np.repeat(joints, 17, axis=1)
    seen: list[tuple[int, ...]] = []

    def backend(crops: np.ndarray) -> np.ndarray:  # peaks where ``joints`` fall in each crop
        seen.append(crops.shape)
        height, width = crops.shape[2:]
        affines = transforms.crop_affines(*transforms.box_to_center_size(batch.pop(0)), 0.0, (height, width))
        return codec.encode(transforms.transform_points(joints[order.pop(0)], affines), np.ones((len(crops), 17)),
                            heatmap_size=(height // 4, width // 4))[0]

    estimator = PoseEstimator(backend, input_size=(128, 96), small_backend=backend)
    batch, order = [boxes[[0]], boxes[[1, 2]]], [[0], [1, 2]]
    keypoints = estimator(image, boxes, small_max_px=100)  # crops of 75 and 50 px: small
    assert seen == [(1, 3, 128, 96), (2, 3, 64, 48)]
    crop_heights = transforms.box_to_center_size(boxes)[1][:, 1]
    err = np.linalg.norm(keypoints[..., :2] - joints, axis=2).max(axis=1)
    assert (err <= crop_heights / 16).all()  # within a heatmap pixel of each crop
    seen.clear()
    batch, order = [boxes], [[0, 1, 2]]
    estimator(image, boxes)  # small_max_px 0: everyone at the full size
    assert seen == [(3, 3, 128, 96)]


@pytest.mark.parametrize("size, small", [((128, 96), (64, 48)), ((256, 192), (128, 96)), ((192, 144), (64, 48))])
def test_small_crops_keep_the_heatmap_grid_of_a_stride_4_network(size, small) -> None:
    # half of 192x144 is 96x72, whose 72 is no multiple of 16: LPN returns 24x20 heatmaps for it, not 24x18
    assert small_crop_size(size) == small
    heatmaps = create_model("lpn50", init=False).eval()(torch.zeros(1, 3, *small))
    assert heatmaps.shape[2:] == (small[0] // 4, small[1] // 4)
    assert PoseEstimator(lambda crops: crops, input_size=size).small_size == small


def test_no_boxes_means_no_backend_call() -> None:
    backend = TargetBackend(np.zeros((0, 17, 2)), np.zeros((0, 2, 3)))
    out = PoseEstimator(backend)(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4)))
    assert out.shape == (0, 17, 3) and backend.calls == []


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_untrained_estimators_keep_keypoints_inside_their_crops(shared, backend: str) -> None:
    image = cv2.imread(str(shared("coco_val2017/images/000000000785.jpg")))
    boxes = np.array([[280.0, 40.0, 500.0, 420.0], [20.0, 30.0, 140.0, 200.0]])
    est = build_estimator("lpn50", weights="untrained", backend=backend)
    assert est.untrained
    keypoints = est(image, boxes)
    centers, sizes = transforms.box_to_center_size(boxes)
    lo, hi = centers - sizes / 2 - 1, centers + sizes / 2 + 1  # decoded points stay inside the crop
    assert ((keypoints[..., :2] >= lo[:, None]) & (keypoints[..., :2] <= hi[:, None])).all()


def test_unknown_backend_is_a_one_line_error() -> None:
    with pytest.raises(LpnError, match="unknown backend 'tensorrt'"):
        build_estimator("lpn50", weights="untrained", backend="tensorrt")
