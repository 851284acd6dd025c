"""COCO person keypoints: instances, augmentation and Gaussian targets, as HRNet's COCODataset (LPN_SPEC §4).

Reads any COCO-format folder with pycocotools. Augmentation draws come from a generator seeded by
(seed, epoch, index), so a sample is the same whatever the number of DataLoader workers or the order
in which they run; ``worker_init_fn`` also seeds each worker's global RNGs for anything else.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from lpn_core import codec, transforms
from lpn_core.errors import DataError

NUM_JOINTS = 17
IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # as HRNet: BGR, EXIF ignored (§4.3)


@dataclass(frozen=True, slots=True)
class CocoSplit:
    """One image folder and its person_keypoints json."""

    images: Path
    ann: Path


@dataclass(slots=True)
class Instances:
    """Person instances as parallel arrays (N = people): what the dataset and the evaluator iterate."""

    image_paths: list[str]  # (N,) absolute image paths
    image_ids: np.ndarray  # (N,) int64 COCO image ids
    centers: np.ndarray  # (N, 2) px
    sizes: np.ndarray  # (N, 2) px, = scale * 200 (§4.2)
    joints: np.ndarray  # (N, 17, 2) px in the image
    visible: np.ndarray  # (N, 17) float32, v > 1 -> 1 (§4.1); x keypoint_scores where given (pseudo-labels)
    scores: np.ndarray  # (N,) box scores (1 for ground truth)

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, index: np.ndarray | slice) -> Instances:
        """The instances at ``index``."""
        idx = np.arange(len(self))[index]
        return Instances([self.image_paths[i] for i in idx], self.image_ids[idx], self.centers[idx],
                         self.sizes[idx], self.joints[idx], self.visible[idx], self.scores[idx])

    @staticmethod
    def concat(parts: list[Instances]) -> Instances:
        """Instances of several splits, in order."""
        return Instances(sum((p.image_paths for p in parts), []),
                         *(np.concatenate([getattr(p, f) for p in parts]) for f in
                           ("image_ids", "centers", "sizes", "joints", "visible", "scores")))


def resolve_folder(folder: str | Path, split: str) -> CocoSplit:
    """Images + json of a COCO-format folder, for ``split`` ('train' or 'val').

    Tried in order: ``{split}2017/`` + ``annotations/person_keypoints_{split}2017.json`` (official
    layout, coco_mini); ``images/`` + that json (coco_val2017); ``images/`` +
    ``annotations/person_keypoints.json`` (coco_extra).
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"data folder '{root}' not found")
    ann_dir = root / "annotations"
    for images, ann in ((root / f"{split}2017", ann_dir / f"person_keypoints_{split}2017.json"),
                        (root / "images", ann_dir / f"person_keypoints_{split}2017.json"),
                        (root / "images", ann_dir / "person_keypoints.json")):
        if images.is_dir() and ann.is_file():
            return CocoSplit(images, ann)
    raise DataError(f"'{root}' is not a COCO keypoints folder: expected {split}2017/ or images/ beside "
                    f"annotations/person_keypoints_{split}2017.json or annotations/person_keypoints.json")


def load_coco(ann_path: str | Path) -> COCO:
    """pycocotools COCO index of a json, quietly; malformed files raise one-line DataErrors."""
    path = Path(ann_path)
    if not path.is_file():
        raise DataError(f"annotations file '{path}' not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"annotations file '{path}' is not valid JSON ({str(exc).splitlines()[0][:100]})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DataError(f"annotations file '{path}' is not COCO format: needs 'images' and 'annotations' lists")
    coco = COCO()
    coco.dataset = data
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco.createIndex()
    except (KeyError, TypeError) as exc:
        raise DataError(f"annotations file '{path}' is malformed: missing or bad key {exc}") from exc
    return coco


def clip_box(bbox_xywh: list[float], width: float, height: float) -> np.ndarray | None:
    """HRNet's box sanitation (§4.1): clip to the image; x2 = min(W-1, x1 + max(0, w-1)). None if empty."""
    x, y, w, h = bbox_xywh
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(width - 1.0, x1 + max(0.0, w - 1.0)), min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 < x1 or y2 < y1:
        return None
    return np.array([x1, y1, x2, y2])


def _checked_keypoints(ann: dict, path: Path) -> np.ndarray:
    """(17, 3) keypoints of an annotation, or a one-line DataError."""
    try:
        kpts = np.asarray(ann["keypoints"], np.float64)
        bbox = [float(v) for v in ann["bbox"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"'{path}': annotation {ann.get('id')} has no valid keypoints/bbox ({exc})") from exc
    if kpts.shape != (NUM_JOINTS * 3,) or len(bbox) != 4 or not np.isfinite(kpts).all():
        raise DataError(f"'{path}': annotation {ann.get('id')} needs 51 keypoint values and a 4-number bbox")
    return kpts.reshape(NUM_JOINTS, 3)


def _joint_scores(ann: dict, path: Path) -> np.ndarray:
    """(17,) per-joint confidences of a pseudo-label (``keypoint_scores``, see train.pseudo_label), else ones."""
    if "keypoint_scores" not in ann:
        return np.ones(NUM_JOINTS)
    try:
        scores = np.clip(np.asarray(ann["keypoint_scores"], np.float64), 0.0, 1.0)
    except (TypeError, ValueError) as exc:
        raise DataError(f"'{path}': annotation {ann.get('id')} has non-numeric keypoint_scores") from exc
    if scores.shape != (NUM_JOINTS,) or not np.isfinite(scores).all():
        raise DataError(f"'{path}': annotation {ann.get('id')} needs 17 finite keypoint_scores")
    return scores


def load_instances(split: CocoSplit, coco: COCO | None = None, check_images: bool = True) -> Instances:
    """Non-crowd people with >= 1 labelled keypoint and a non-empty clipped box (§4.1), GT boxes (§4.2).

    ``check_images=False`` skips the file checks (annotation-only jsons, evaluation-code tests).
    """
    coco = coco or load_coco(split.ann)
    if check_images and not split.images.is_dir():
        raise DataError(f"image folder '{split.images}' not found")
    rows: list[tuple] = []
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        try:
            width, height, name = float(info["width"]), float(info["height"]), str(info["file_name"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"'{split.ann}': image {image_id} lacks width/height/file_name") from exc
        for ann in coco.imgToAnns.get(image_id, []):  # = getAnnIds(iscrowd=False), tolerant of missing keys
            if ann.get("iscrowd", 0) or ann.get("category_id", 1) != 1:
                continue
            kpts = _checked_keypoints(ann, split.ann)
            box = clip_box(ann["bbox"], width, height)
            if kpts[:, 2].max() <= 0 or box is None or float(ann.get("area", 1.0)) <= 0:
                continue
            rows.append((str(split.images / name), image_id, box, kpts, _joint_scores(ann, split.ann)))
    if not rows:
        raise DataError(f"'{split.ann}' has no person with labelled keypoints")
    missing = next((p for p, *_ in rows if not os.path.isfile(p)), None) if check_images else None
    if missing is not None:
        raise DataError(f"image '{missing}' listed in '{split.ann}' not found")
    boxes = np.stack([r[2] for r in rows])
    kpts = np.stack([r[3] for r in rows])
    centers, sizes = transforms.box_to_center_size(boxes)
    visible = np.minimum(kpts[..., 2], 1.0) * np.stack([r[4] for r in rows])
    return Instances([r[0] for r in rows], np.array([r[1] for r in rows], np.int64), centers, sizes,
                     kpts[..., :2].copy(), visible.astype(np.float32), np.ones(len(rows), np.float32))


@dataclass(frozen=True, slots=True)
class Augment:
    """Random-transform settings of the LPN COCO yaml (§4.3); half-body is off."""

    scale_factor: float = 0.3
    rotation_factor: float = 40.0
    rotation_prob: float = 0.6
    flip: bool = True
    flip_prob: float = 0.5

    def draw(self, rng: np.random.Generator) -> tuple[float, float, bool]:
        """(scale multiplier, rotation in degrees, flip?) as HRNet's __getitem__ draws them."""
        sf, rf = self.scale_factor, self.rotation_factor
        scale = float(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))
        rot = float(np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf))
        rot = rot if rng.random() <= self.rotation_prob else 0.0
        flip = bool(self.flip and rng.random() <= self.flip_prob)
        return scale, rot, flip


def flip_instance(joints: np.ndarray, visible: np.ndarray, center: np.ndarray, width: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror an instance in an image of ``width`` px: x <- W-1-x, swap the COCO pairs (§4.3)."""
    joints = joints[codec.FLIP_PERM].copy()
    joints[:, 0] = width - 1 - joints[:, 0]
    return joints, visible[codec.FLIP_PERM], np.array([width - 1 - center[0], center[1]])


def sample_affine(center: np.ndarray, size: np.ndarray, scale: float, rot: float, flip: bool, width: int,
                  input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(affine applied to the mirrored-or-not image frame, affine applied to the original image).

    HRNet mirrors the whole image and then crops around the mirrored centre; cropping the original
    image with (crop affine) o (mirror) gives the same pixels exactly, since the mirror x <- W-1-x
    maps the pixel grid onto itself. The first matrix is the one for (mirrored) joints. ``input_size``: (H, W).
    """
    crop = transforms.crop_affines(center[None], size[None] * scale, rot, input_size)[0]
    if not flip:
        return crop, crop
    mirror = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return crop, crop @ mirror


@dataclass(frozen=True, slots=True)
class Targets:
    """How joints become heatmaps (LPN_SPEC §4.5): Gaussian sigma in heatmap px, rounded or sub-pixel centre."""

    sigma: float = codec.SIGMA
    unbiased: bool = False  # codec.encode(unbiased=True): the Gaussian peaks at the exact joint position


class ImageCache:
    """Decoded BGR images kept in memory, so each file is read and decoded once per process, not per sample."""

    def __init__(self) -> None:
        self.images: dict[str, np.ndarray] = {}

    def get(self, path: str) -> np.ndarray | None:
        image = self.images.get(path)
        if image is None:
            image = cv2.imread(path, IMREAD_FLAGS)
            if image is not None:
                self.images[path] = image
        return image


SampleKey = int | tuple[int, int]  # instance index, or (instance index, index into the crop sizes)


class CocoKeypoints(Dataset):
    """Training samples: (image (3, H, W) f32, target (17, H/4, W/4) f32, target weight (17,) f32).

    ``dataset[i]`` crops at ``input_size``; ``dataset[i, s]`` at ``sizes[s]`` (the batches of a
    :class:`train.sizes.SizedBatches` sampler share one size). ``cache`` keeps decoded images in memory.
    """

    def __init__(self, instances: Instances, input_size: tuple[int, int] = (256, 192),
                 augment: Augment | None = Augment(), seed: int = 0, targets: Targets = Targets(),
                 sizes: tuple[tuple[int, int], ...] = (), cache: bool = False) -> None:
        self.instances = instances
        self.input_size = input_size  # (H, W)
        self.sizes = tuple(sizes) or (tuple(input_size),)  # (H, W) of each crop size a batch may use
        self.augment = augment
        self.seed = seed
        self.targets = targets
        self.cache = ImageCache() if cache else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentations of epoch ``epoch`` (call before building the epoch's iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.instances)

    def read_image(self, index: int) -> np.ndarray:
        """BGR uint8 image of instance ``index``; one-line DataError if unreadable."""
        path = self.instances.image_paths[index]
        image = self.cache.get(path) if self.cache is not None else cv2.imread(path, IMREAD_FLAGS)
        if image is None:
            raise DataError(f"cannot read image '{path}' (missing or not an image)")
        return image

    def transform(self, index: int, image: np.ndarray, rng: np.random.Generator | None,
                  input_size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Crop (H, W, 3) uint8, joints (17, 2) in input px, visible (17,), joints' affine (2, 3)."""
        inst = self.instances
        center, size = inst.centers[index], inst.sizes[index]
        joints, visible = inst.joints[index], inst.visible[index]
        scale, rot, flip = self.augment.draw(rng) if (self.augment and rng is not None) else (1.0, 0.0, False)
        if flip:
            joints, visible, center = flip_instance(joints, visible, center, image.shape[1])
        input_size = input_size or self.input_size
        joint_affine, image_affine = sample_affine(center, size, scale, rot, flip, image.shape[1], input_size)
        crop = transforms.warp_crops(image, image_affine[None, :2], input_size)[0]
        joints_in = transforms.transform_points(joints[None], joint_affine[None])[0]
        return crop, joints_in, visible, joint_affine

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index, size_index = key if isinstance(key, tuple) else (key, 0)
        h, w = self.sizes[size_index] if isinstance(key, tuple) else self.input_size
        rng = np.random.default_rng([self.seed, self.epoch, index])
        crop, joints_in, visible, _ = self.transform(index, self.read_image(index), rng, (h, w))
        # stride = input / heatmap size, as HRNet's feat_stride (§4.5)
        target, weight = codec.encode(joints_in, visible, heatmap_size=(h // 4, w // 4), stride=4.0,
                                      sigma=self.targets.sigma, unbiased=self.targets.unbiased)
        weight = weight * visible.astype(np.float32)  # 1 for ground truth; the teacher's confidence otherwise
        image = transforms.normalize(crop[None])[0]
        return torch.from_numpy(image), torch.from_numpy(target), torch.from_numpy(weight)


def worker_init_fn(worker_id: int) -> None:
    """Seed a worker's global RNGs from its torch seed (base seed of the loader's generator + id)."""
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)
    cv2.setRNGSeed(seed % 2 ** 31)
    cv2.setNumThreads(1)  # workers are processes already; OpenCV threads would oversubscribe the cores
