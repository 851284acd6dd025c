"""train.data: instances, augmentation and targets on real COCO data (LPN_SPEC §4)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from lpn_core import codec, transforms
from lpn_core.errors import DataError
from tests.conftest import shared_path
from train.config import TrainConfig
from train.data import (Augment, CocoKeypoints, CocoSplit, clip_box, load_coco, load_instances, resolve_folder)
from train.loop import Runtime, build_loader


@pytest.fixture(scope="module")
def val_instances():
    return load_instances(resolve_folder(shared_path("coco_val2017"), "val"))


def test_folders_resolve_and_filter_like_hrnet() -> None:
    """Non-crowd, >= 1 labelled keypoint (§4.1): counts of the shared data README."""
    mini = resolve_folder(shared_path("coco_mini"), "train")
    assert mini.images.name == "train2017" and len(load_instances(mini)) == 86
    extra = resolve_folder(shared_path("coco_extra"), "train")
    assert extra.ann.name == "person_keypoints.json" and len(load_instances(extra)) == 749
    val = resolve_folder(shared_path("coco_val2017"), "val")
    assert val.images.name == "images" and len(load_instances(val)) == 136


def test_clip_box_and_center_size() -> None:
    assert clip_box([-5, 10, 100, 50], 80, 40).tolist() == [0, 10, 79, 39]  # x2 = min(W-1, x1 + w-1)
    assert clip_box([90, 10, 5, 5], 80, 40) is None
    centers, sizes = transforms.box_to_center_size(np.array([[0, 10, 79, 39]]))
    assert centers[0].tolist() == [39.5, 24.5] and sizes[0] == pytest.approx([79 * 1.25, 79 / 0.75 * 1.25])


def test_visibility_two_becomes_one(val_instances) -> None:
    assert set(np.unique(val_instances.visible)) == {0.0, 1.0}


def _write(tmp_path, data) -> CocoSplit:
    (tmp_path / "images").mkdir(exist_ok=True)
    ann = tmp_path / "ann.json"
    ann.write_text(data if isinstance(data, str) else json.dumps(data))
    return CocoSplit(tmp_path / "images", ann)


GOOD_IMAGE = {"id": 1, "file_name": "a.jpg", "width": 64, "height": 64}
GOOD_ANN = {"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100.0, "bbox": [1, 1, 30, 30],
            "keypoints": [10, 10, 2] + [0, 0, 0] * 16, "num_keypoints": 1}


@pytest.mark.parametrize("data, match", [
    ("{oops", "not valid JSON"),
    ([1, 2], "not COCO format"),
    ({"images": [GOOD_IMAGE], "annotations": [{**GOOD_ANN, "keypoints": [1, 2, 2]}]}, "51 keypoint values"),
    ({"images": [GOOD_IMAGE], "annotations": [{k: v for k, v in GOOD_ANN.items() if k != "bbox"}]}, "no valid keypoints/bbox"),
    ({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [GOOD_ANN]}, "width/height"),
    ({"images": [GOOD_IMAGE], "annotations": [{k: v for k, v in GOOD_ANN.items() if k != "image_id"}]}, "malformed"),
    ({"images": [GOOD_IMAGE], "annotations": [GOOD_ANN]}, "image .*a.jpg.* not found"),
    ({"images": [GOOD_IMAGE], "annotations": []}, "no person with labelled keypoints"),
])
def test_malformed_annotations_raise_one_line_data_error(tmp_path, data, match) -> None:
    split = _write(tmp_path, data)
    with pytest.raises(DataError, match=match) as info:
        load_instances(split, load_coco(split.ann))
    assert "\n" not in str(info.value)


def test_missing_folder_is_a_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        resolve_folder(tmp_path / "nope", "train")
    with pytest.raises(DataError, match="not a COCO keypoints folder"):
        resolve_folder(tmp_path, "train")


def _peak_on_map(joints_in: np.ndarray, width: int = 48, height: int = 64) -> np.ndarray:
    """Joints inside the crop whose rounded heatmap position μ is a pixel of the map (a joint in the
    last 2 input px rounds to μ = 48 or 64: its target is only a Gaussian tail, nothing to decode)."""
    mu = np.floor(joints_in / 4 + 0.5)
    return (joints_in >= 0).all(-1) & (mu[..., 0] < width) & (mu[..., 1] < height)


def test_round_trip_crop_target_decode_inverse(val_instances) -> None:
    """Labelled keypoints -> crop (256x192, GT box) -> σ=2 target -> decode -> image px.

    encode rounds each joint to an integer heatmap position, μ = int(x/4 + 0.5), so the round trip
    is exact up to that quantization: |error| ≤ 0.5 heatmap px (= 2 input px). Decoding has no
    quarter offset here: on an ideal target the two neighbours of the peak are equal, so the offset
    is sign(0) = 0 anyway (asserted); it exists to correct blurred network outputs. Only joints
    inside the crop with a peak on the map are checked: just left/above the crop int() truncates
    toward zero (HRNet's quirk), at the right/bottom edge μ can round off the map."""
    inst = val_instances
    affines = transforms.crop_affines(inst.centers, inst.sizes, 0.0, (256, 192))
    joints_in = transforms.transform_points(inst.joints, affines)
    targets, weights = codec.encode(joints_in, inst.visible, (64, 48))
    coords, scores = codec.decode(targets, quarter_offset=False)
    with_offset, _ = codec.decode(targets)
    checked = (weights > 0) & _peak_on_map(joints_in)
    assert checked.sum() > 1300  # of 1,3xx labelled joints
    np.testing.assert_allclose(with_offset[checked], coords[checked], atol=1e-6)
    assert np.abs(coords - joints_in / 4)[checked].max() <= 0.5 + 1e-4
    assert scores[checked].min() > 0.999  # peak 1 at the decoded location
    frame = transforms.heatmap_to_frame(coords, affines)
    px_per_heatmap_px = inst.sizes[:, 0] / 48  # §4.4: x_img = c_x + (x̂ − 24)·s_w·200/48
    err = np.abs(frame - inst.joints).max(axis=2)
    assert (err <= 0.5 * px_per_heatmap_px[:, None] + 1e-3)[checked].all()


def test_round_trip_within_half_pixel_at_heatmap_resolution(val_instances) -> None:
    """Same round trip with a crop where one heatmap pixel is one image pixel (box width 48 px,
    centred off-grid on a labelled joint): every labelled joint in the crop returns within 0.5 px."""
    inst = val_instances
    rng = np.random.default_rng(0)
    first = inst.visible.argmax(axis=1)
    centers = inst.joints[np.arange(len(inst)), first] + rng.uniform(-0.5, 0.5, (len(inst), 2))
    sizes = np.tile([48.0, 64.0], (len(inst), 1))
    affines = transforms.crop_affines(centers, sizes, 0.0, (256, 192))
    joints_in = transforms.transform_points(inst.joints, affines)
    targets, weights = codec.encode(joints_in, inst.visible, (64, 48))
    coords, _ = codec.decode(targets, quarter_offset=False)
    frame = transforms.heatmap_to_frame(coords, affines)
    checked = (weights > 0) & _peak_on_map(joints_in)
    assert checked.sum() >= 300
    assert np.abs(frame - inst.joints)[checked].max() <= 0.5 + 1e-6


def test_augmentation_draws_follow_the_yaml() -> None:
    rng = np.random.default_rng(1)
    draws = np.array([Augment().draw(rng) for _ in range(4000)])
    scale, rot, flip = draws[:, 0], draws[:, 1], draws[:, 2]
    assert scale.min() >= 0.7 and scale.max() <= 1.3 and scale.std() == pytest.approx(0.3 * 0.80, abs=0.03)
    assert np.abs(rot).max() <= 80 and np.mean(rot != 0) == pytest.approx(0.6, abs=0.03)
    assert np.mean(flip) == pytest.approx(0.5, abs=0.03)


def test_augmentation_keeps_keypoints_on_their_body_parts(val_instances) -> None:
    """Paint joint j of each person as a small disc of grey level 10(j+1), push the painting through
    the same random crop (scale, rotation, flip) as the image, and read it under every target joint:
    channel k must sit on the disc of joint k, or of its mirror partner when the sample was flipped.
    The joints also equal the labelled keypoints warped with the image affine (pairs swapped)."""
    dataset = CocoKeypoints(val_instances, (256, 192), Augment(), seed=5)
    checked, flipped_samples = 0, 0
    for index in range(0, len(val_instances), 3):
        inst = val_instances
        labelled = inst.visible[index] > 0
        pts = inst.joints[index]
        dist = np.linalg.norm(pts[:, None] - pts[None], axis=2) + np.eye(17) * 1e9
        isolated = labelled & (dist[:, labelled].min(axis=1) > 8)
        image = cv2.imread(inst.image_paths[index])
        paint = np.zeros_like(image)
        for j in np.flatnonzero(isolated):
            cv2.circle(paint, (int(round(pts[j, 0])), int(round(pts[j, 1]))), 3, (int(10 * (j + 1)),) * 3, -1)
        rng = np.random.default_rng([5, 0, index])
        _, _, flip = Augment().draw(rng)
        crop, joints_in, visible, joint_affine = dataset.transform(index, paint, np.random.default_rng([5, 0, index]))
        source = codec.FLIP_PERM if flip else np.arange(17)
        flipped_samples += flip
        # joints = labelled keypoints (mirrored when flipped) warped with the affine the pixels used
        if flip:
            mirrored = pts.copy()
            mirrored[:, 0] = image.shape[1] - 1 - mirrored[:, 0]
            expected = transforms.transform_points(mirrored[None], joint_affine[None])[0][source]
        else:
            expected = transforms.transform_points(pts[None], joint_affine[None])[0]
        np.testing.assert_allclose(joints_in[visible > 0], expected[visible > 0], atol=1e-6)
        for k in range(17):
            x, y = np.round(joints_in[k]).astype(int)
            if visible[k] > 0 and isolated[source[k]] and 0 <= x < 192 and 0 <= y < 256:
                assert crop[y, x, 0] == 10 * (source[k] + 1), (index, k, flip)
                checked += 1
    assert checked > 300 and flipped_samples > 5


def test_samples_are_deterministic_and_independent_of_workers(val_instances) -> None:
    dataset = CocoKeypoints(val_instances.subset(slice(0, 6)), (64, 48), Augment(), seed=3)
    config = TrainConfig(batch_size=3, seed=3, workers=0)
    serial = [b for b in build_loader(dataset, config, Runtime(torch.device("cpu")), epoch=2)]
    config.workers = 2
    parallel = [b for b in build_loader(dataset, config, Runtime(torch.device("cpu")), epoch=2)]
    for a, b in zip(serial, parallel, strict=True):
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    config.workers = 0
    other_epoch = next(iter(build_loader(dataset, config, Runtime(torch.device("cpu")), epoch=3)))
    assert not torch.equal(other_epoch[0], serial[0][0])
    image, target, weight = dataset[0]
    assert image.shape == (3, 64, 48) and target.shape == (17, 16, 12) and weight.shape == (17,)
