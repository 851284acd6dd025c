"""Heatmaps <-> keypoints: Gaussian targets for training, flip merge and Beta-Soft-Argmax for inference.

One codec for both sides (STYLE §6): ``train/`` calls :func:`encode`, the pipeline calls
:func:`flip_merge` and :func:`decode`. Everything is vectorized over (N, K); nothing loops over joints.
"""
from __future__ import annotations

from typing import Final

import numpy as np

SIGMA: Final = 2.0  # LPN_SPEC §4.5
BETA: Final = 160.0  # hard-coded in the official SoftArgmax2D, LPN_SPEC §3
COCO_FLIP_PAIRS: Final = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


def flip_permutation(num_joints: int = 17, pairs: tuple[tuple[int, int], ...] = COCO_FLIP_PAIRS) -> np.ndarray:
    """Index array that swaps left/right joints: ``x[..., perm, ...]`` mirrors joint identities."""
    perm = np.arange(num_joints)
    for left, right in pairs:
        perm[left], perm[right] = right, left
    return perm


FLIP_PERM: Final = flip_permutation()


def encode(joints: np.ndarray, visible: np.ndarray, heatmap_size: tuple[int, int] = (64, 48),
           stride: float = 4.0, sigma: float = SIGMA, unbiased: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian targets with target weights, as HRNet's ``generate_target`` (LPN_SPEC §4.5).

    joints: (..., K, 2) in input-image pixels; visible: (..., K) > 0 where labelled.
    Returns heatmaps (..., K, H, W) float32 and weights (..., K) float32 (0 for unlabelled joints or
    windows entirely off the map). The Gaussian (6 sigma + 1 window) peaks at the integer-rounded
    centre, as HRNet, or with ``unbiased`` at the exact sub-pixel centre x / stride, the unbiased
    encoding of DARK (Zhang et al., CVPR 2020, https://arxiv.org/abs/1910.06278, Sec. 3.2).
    """
    height, width = heatmap_size
    radius = 3 * sigma
    mu = np.asarray(joints, np.float64) / stride
    if not unbiased:  # int(x / stride + 0.5) truncates toward zero, as the reference does
        mu = np.trunc(mu + 0.5)
    mu_x, mu_y = mu[..., 0], mu[..., 1]
    off_map = (mu_x - radius >= width) | (mu_y - radius >= height) | (mu_x + radius + 1 < 0) | (mu_y + radius + 1 < 0)
    weights = ((np.asarray(visible) > 0) & ~off_map).astype(np.float32)

    dx = np.arange(width, dtype=np.float64) - mu_x[..., None]  # (..., K, W)
    dy = np.arange(height, dtype=np.float64) - mu_y[..., None]  # (..., K, H)
    gx = np.where(np.abs(dx) <= radius, np.exp(-dx ** 2 / (2 * sigma ** 2)), 0.0)
    gy = np.where(np.abs(dy) <= radius, np.exp(-dy ** 2 / (2 * sigma ** 2)), 0.0)
    heatmaps = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]
    return heatmaps.astype(np.float32), weights


def flip_back(heatmaps: np.ndarray, perm: np.ndarray = FLIP_PERM) -> np.ndarray:
    """Mirror heatmaps (N, K, H, W) horizontally and swap left/right channels. Its own inverse."""
    return heatmaps[:, perm, :, ::-1]


UNBIASED_FLIP_SHIFT: Final = 0.75
"""Flip-test shift for unbiased targets. Mirroring a crop of width W maps x to W - 1 - x, i.e. heatmap
column x / 4 to (W - 1 - x) / 4; flipping the heatmap back maps it to W / 4 - 1 - (W - 1 - x) / 4 =
x / 4 - 3 / 4, so the flipped-back map sits 0.75 px left of the direct one (stride 4). The paper's 1 px
(LPN_SPEC §3) is that shift rounded, right for integer-rounded targets."""


def flip_merge(heatmaps: np.ndarray, flipped_heatmaps: np.ndarray, shift: bool | float = True,
               perm: np.ndarray = FLIP_PERM) -> np.ndarray:
    """Average the heatmaps of a crop and of its mirror image (LPN_SPEC §3 steps 2-3).

    ``flipped_heatmaps`` is the network output for the mirrored crop. It is flipped back, and with
    ``shift`` moved right by 1 px (column j takes column j-1, column 0 keeps its value), or by a
    fraction of a pixel (linear interpolation between the two columns) when ``shift`` is a float.
    """
    back = flip_back(flipped_heatmaps, perm).copy()
    amount = float(shift)
    if amount:
        moved = back.copy()
        moved[..., 1:] = (1.0 - amount) * back[..., 1:] + amount * back[..., :-1]
        back = moved
    return (heatmaps + back) * 0.5


def soft_argmax(heatmaps: np.ndarray, beta: float = BETA) -> np.ndarray:
    """Beta-Soft-Argmax (LPN_SPEC §3): expected (x, y) under softmax(beta * H) over all pixels.

    heatmaps (N, K, H, W) -> coords (N, K, 2) in 0-based heatmap pixels. Stable: the max is
    subtracted first, since exp(160 * 1.0) overflows float32.
    """
    n, k, h, w = heatmaps.shape
    logits = beta * heatmaps.reshape(n, k, h * w).astype(np.float64)
    probs = np.exp(logits - logits.max(axis=2, keepdims=True))
    probs /= probs.sum(axis=2, keepdims=True)
    probs = probs.reshape(n, k, h, w)
    x = (probs.sum(axis=2) * np.arange(w)).sum(axis=2)
    y = (probs.sum(axis=3) * np.arange(h)).sum(axis=2)
    return np.stack([x, y], axis=-1)


def _values_at(heatmaps: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """heatmaps[n, k, py[n, k], px[n, k]] for integer index arrays (N, K)."""
    n, k = px.shape
    return heatmaps[np.arange(n)[:, None], np.arange(k)[None, :], py, px]


def decode(heatmaps: np.ndarray, beta: float = BETA, quarter_offset: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints from raw (flip-merged) heatmaps, in the released eval's order (LPN_SPEC §3 steps 4-6).

    heatmaps: (N, K, H, W). Returns coords (N, K, 2) float32 in heatmap pixels and scores (N, K)
    float32: the heatmap value at the rounded soft-argmax location (not the max).
    ``quarter_offset`` adds SimpleBaseline's ±0.25 step towards the higher neighbour, as the
    released models do (POST_PROCESS true).
    """
    heatmaps = np.asarray(heatmaps, np.float32)
    n, k, h, w = heatmaps.shape
    coords = soft_argmax(heatmaps, beta)
    # The reference reads the score at np.round (half to even) but steps the offset from floor(x + 0.5).
    rounded = np.clip(np.rint(coords), 0, [w - 1, h - 1]).astype(np.int64)
    scores = _values_at(heatmaps, rounded[..., 0], rounded[..., 1])
    px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
    py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
    if quarter_offset:
        inside = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
        cx, cy = np.clip(px, 1, w - 2), np.clip(py, 1, h - 2)
        diff_x = _values_at(heatmaps, cx + 1, cy) - _values_at(heatmaps, cx - 1, cy)
        diff_y = _values_at(heatmaps, cx, cy + 1) - _values_at(heatmaps, cx, cy - 1)
        coords = coords + 0.25 * np.stack([np.sign(diff_x), np.sign(diff_y)], axis=-1) * inside[..., None]
    return coords.astype(np.float32), scores.astype(np.float32)
