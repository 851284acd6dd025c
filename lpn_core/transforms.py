"""Person boxes -> centre/size -> affine crops, and keypoints back to frame pixels (LPN_SPEC §4.2, §4.4).

Sizes are in pixels (the reference's ``scale * 200``). Affines are (N, 2, 3) float64 matrices that
map frame pixels to crop pixels, the same matrices ``cv2.warpAffine`` takes. Crop sizes are (H, W), as
everywhere in lpn_core (docs/CONTRACTS.md); only the OpenCV call below takes them as (W, H).
"""
from __future__ import annotations

from typing import Final

import cv2
import numpy as np

ASPECT: Final = 192 / 256  # w / h of the network input, LPN_SPEC §4.2
PADDING: Final = 1.25  # box enlargement, LPN_SPEC §4.2
# ImageNet RGB statistics applied to BGR channels as they are: the official COCO weights expect
# this (COLOR_RGB false, LPN_SPEC §4.3).
MEAN: Final = np.array([0.485, 0.456, 0.406], np.float32)
STD: Final = np.array([0.229, 0.224, 0.225], np.float32)


def box_to_center_size(boxes_xyxy: np.ndarray, aspect: float = ASPECT, pad: float = PADDING) -> tuple[np.ndarray, np.ndarray]:
    """boxes (N, 4) x1 y1 x2 y2 px -> centres (N, 2) and sizes (N, 2) px, widened to w/h = aspect, then padded."""
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    centers = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    w, h = np.where(w > aspect * h, w, h * aspect), np.where(w > aspect * h, w / aspect, h)
    return centers, np.stack([w, h], axis=1) * pad


def xywh_to_xyxy(boxes_xywh: np.ndarray) -> np.ndarray:
    """COCO boxes (N, 4) x y w h -> (N, 4) x1 y1 x2 y2."""
    boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def crop_affines(centers: np.ndarray, sizes: np.ndarray, rotations_deg: np.ndarray | float = 0.0,
                 output_size: tuple[int, int] = (256, 192)) -> np.ndarray:
    """Frame -> crop affines (N, 2, 3): centre to the crop centre, box width to the crop width.

    Closed form of HRNet's ``get_affine_transform`` (its three-point construction describes a
    similarity: scale out_w / size_w, rotation by -r about the centre); written in closed form so
    that it is vectorized over N. ``output_size`` is the crop's (H, W).
    """
    centers = np.asarray(centers, np.float64).reshape(-1, 2)
    sizes = np.asarray(sizes, np.float64).reshape(-1, 2)
    rot = np.deg2rad(np.broadcast_to(np.asarray(rotations_deg, np.float64), (len(centers),)))
    out_h, out_w = output_size
    k = out_w / sizes[:, 0]
    cos, sin = k * np.cos(rot), k * np.sin(rot)
    linear = np.stack([np.stack([cos, sin], 1), np.stack([-sin, cos], 1)], 1)  # (N, 2, 2)
    out_center = np.array([out_w * 0.5, out_h * 0.5])
    translation = out_center - np.einsum("nij,nj->ni", linear, centers)
    return np.concatenate([linear, translation[:, :, None]], axis=2)


def invert_affines(affines: np.ndarray) -> np.ndarray:
    """Inverse of each (N, 2, 3) affine, as ``cv2.invertAffineTransform`` but vectorized."""
    linear_inv = np.linalg.inv(affines[:, :, :2])
    translation = -np.einsum("nij,nj->ni", linear_inv, affines[:, :, 2])
    return np.concatenate([linear_inv, translation[:, :, None]], axis=2)


def transform_points(points: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """Apply affines (N, 2, 3) to points (N, K, 2)."""
    return np.einsum("nij,nkj->nki", affines[:, :, :2], points) + affines[:, None, :, 2]


def warp_crops(image: np.ndarray, affines: np.ndarray, output_size: tuple[int, int] = (256, 192)) -> np.ndarray:
    """Cut N crops (N, H, W, 3) uint8 of ``output_size`` (H, W) out of a BGR image with bilinear ``cv2.warpAffine``."""
    out_h, out_w = output_size
    crops = np.empty((len(affines), out_h, out_w, 3), np.uint8)
    for i, affine in enumerate(affines):  # one OpenCV call per crop; cv2 has no batched warp
        cv2.warpAffine(image, affine, (out_w, out_h), dst=crops[i], flags=cv2.INTER_LINEAR)
    return crops


def normalize(crops: np.ndarray) -> np.ndarray:
    """uint8 BGR crops (N, H, W, 3) -> float32 (N, 3, H, W), ImageNet mean/std on BGR as is (LPN_SPEC §4.3)."""
    scale = (1.0 / (255.0 * STD)).astype(np.float32)
    data = crops.astype(np.float32) * scale - MEAN / STD
    return np.ascontiguousarray(data.transpose(0, 3, 1, 2))


def heatmap_to_frame(coords: np.ndarray, affines: np.ndarray, stride: float = 4.0) -> np.ndarray:
    """Heatmap coords (N, K, 2) -> frame pixels through the inverse crop affine (LPN_SPEC §4.4).

    The heatmap affine of the reference is the crop affine divided by the stride, so this equals
    its ``transform_preds`` (no half-pixel correction, the "biased" convention).
    """
    return transform_points(np.asarray(coords, np.float64) * stride, invert_affines(affines))


def keypoints_to_boxes(keypoints: np.ndarray, threshold: float = 0.3, min_points: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Tight boxes (N, 4) around the confident keypoints of (N, K, 3) poses, and a mask (N,) of
    poses with at least ``min_points`` such keypoints. Used to carry a person to the next frame."""
    confident = keypoints[..., 2] >= threshold
    xy = keypoints[..., :2]
    big = np.finfo(np.float32).max
    lo = np.where(confident[..., None], xy, big).min(axis=1)
    hi = np.where(confident[..., None], xy, -big).max(axis=1)
    ok = confident.sum(axis=1) >= min_points
    boxes = np.where(ok[:, None], np.concatenate([lo, hi], axis=1), 0.0)
    return boxes.astype(np.float32), ok
