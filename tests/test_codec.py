"""Codec: Gaussian targets, flip merge, Beta-Soft-Argmax + quarter offset (LPN_SPEC §3, §4.5)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lpn_core import codec

H, W = 64, 48


def smooth_peaks(centers: np.ndarray, amplitude: float = 0.25, sigma: float = 6.0) -> np.ndarray:
    """Flattened peaks (N, K, H, W) at sub-pixel centres (N, K, 2): the kind β-SA interpolates.

    With β·amplitude = 40 the softmax is ~Gaussian with std sigma/√40 ≈ 0.95 px: wide enough to be
    sampled without bias on the integer grid, sharp enough that the flat tail carries no mass."""
    ys, xs = np.mgrid[0:H, 0:W]
    d2 = (xs - centers[..., 0, None, None]) ** 2 + (ys - centers[..., 1, None, None]) ** 2
    return (amplitude * np.exp(-d2 / (2 * sigma ** 2))).astype(np.float32)


def reference_decode(heatmaps: np.ndarray, beta: float = 160.0) -> tuple[np.ndarray, np.ndarray]:
    """The released eval, loop for loop (get_final_preds_using_softargmax), to pin the vectorized one."""
    n, k = heatmaps.shape[:2]
    coords, maxvals = np.zeros((n, k, 2)), np.zeros((n, k))
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j].astype(np.float64)
            e = np.exp(beta * (hm - hm.max()))
            e /= e.sum()
            x, y = (e.sum(0) * np.arange(W)).sum(), (e.sum(1) * np.arange(H)).sum()
            maxvals[i, j] = hm[int(np.round(y)), int(np.round(x))]  # SoftArgmax2D: np.round
            px, py = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
            if 1 < px < W - 1 and 1 < py < H - 1:
                x += 0.25 * np.sign(hm[py, px + 1] - hm[py, px - 1])
                y += 0.25 * np.sign(hm[py + 1, px] - hm[py - 1, px])
            coords[i, j] = x, y
    return coords, maxvals


def test_encode_puts_a_unit_peak_at_the_rounded_joint() -> None:
    joints = np.array([[[100.0, 60.0], [13.0, 250.0]]])  # input px (192 x 256 crop)
    heatmaps, weights = codec.encode(joints, np.ones((1, 2)))
    assert heatmaps.shape == (1, 2, H, W) and weights.tolist() == [[1.0, 1.0]]
    assert heatmaps[0, 0, 15, 25] == 1.0  # int(100/4 + .5) = 25, int(60/4 + .5) = 15
    assert heatmaps[0, 1, 63, 3] == 1.0  # int(13/4 + .5) = 3, int(250/4 + .5) = 63
    assert math.isclose(heatmaps[0, 0, 15, 26], math.exp(-1 / 8), rel_tol=1e-6)
    assert heatmaps[0, 0, 15, 31] > 0.0 and heatmaps[0, 0, 15, 32] == 0.0  # 13 x 13 window, radius 3σ = 6


def test_encode_weights_zero_for_unlabelled_and_off_map_joints() -> None:
    joints = np.array([[50.0, 50.0], [50.0, 50.0], [-40.0, 50.0], [215.0, 50.0], [-20.0, 50.0]])
    heatmaps, weights = codec.encode(joints, np.array([2, 0, 1, 1, 1]))
    assert weights.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]  # v=2 counts as visible; -20 px still overlaps
    assert heatmaps[1].max() == 0.0 and heatmaps[2].max() == 0.0


def test_beta_soft_argmax_recovers_subpixel_peaks() -> None:
    rng = np.random.default_rng(0)
    centers = np.stack([rng.uniform(8, W - 8, (4, 17)), rng.uniform(8, H - 8, (4, 17))], axis=-1)
    coords, _ = codec.decode(smooth_peaks(centers), quarter_offset=False)
    assert np.abs(coords - centers).max() < 0.05


def test_decode_matches_the_released_loop_including_quarter_offset_and_maxval() -> None:
    rng = np.random.default_rng(1)
    centers = np.stack([rng.uniform(-3, W + 3, (3, 17)), rng.uniform(-3, H + 3, (3, 17))], axis=-1)
    heatmaps = smooth_peaks(centers, amplitude=0.8, sigma=2.0) + rng.normal(0, 0.01, (3, 17, H, W)).astype(np.float32)
    coords, scores = codec.decode(heatmaps)
    ref_coords, ref_scores = reference_decode(heatmaps)
    np.testing.assert_allclose(coords, ref_coords, atol=1e-4)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)


def test_decode_is_stable_for_large_heatmap_values() -> None:
    heatmaps = np.zeros((1, 1, H, W), np.float32)
    heatmaps[0, 0, 10, 20] = 5.0  # exp(160 * 5) overflows without the max subtraction
    coords, scores = codec.decode(heatmaps, quarter_offset=False)
    assert np.isfinite(coords).all() and coords[0, 0].tolist() == [20.0, 10.0] and scores[0, 0] == 5.0


def test_flip_back_of_a_flipped_heatmap_is_identity() -> None:
    heatmaps = np.random.default_rng(2).normal(size=(2, 17, H, W)).astype(np.float32)
    np.testing.assert_array_equal(codec.flip_back(codec.flip_back(heatmaps)), heatmaps)


def test_flip_back_swaps_left_and_right_joints() -> None:
    heatmaps = np.zeros((1, 17, H, W), np.float32)
    heatmaps[0, 5, 20, 10] = 1.0  # left shoulder at x = 10
    flipped = codec.flip_back(heatmaps)
    assert flipped[0, 6, 20, W - 1 - 10] == 1.0 and flipped[0, 5].max() == 0.0


def test_flip_merge_shifts_the_flipped_output_one_pixel_right() -> None:
    heatmaps = np.zeros((1, 17, H, W), np.float32)
    mirrored = np.zeros_like(heatmaps)
    mirrored[0, 0, 30, W - 1 - 20] = 1.0  # nose at x = 20 in the original frame of reference
    mirrored[0, 0, 30, 0] = 3.0  # lands in column W-1 after the flip-back
    merged = codec.flip_merge(heatmaps, mirrored)
    assert merged[0, 0, 30, 21] == 0.5 and merged[0, 0, 30, 20] == 0.0
    unshifted = codec.flip_merge(heatmaps, mirrored, shift=False)
    assert unshifted[0, 0, 30, 20] == 0.5


def test_flip_permutation_pairs_are_the_coco_left_right_joints() -> None:
    assert codec.FLIP_PERM.tolist() == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


@pytest.mark.parametrize("shape", [(0, 17, H, W), (5, 17, H, W)])
def test_decode_shapes(shape: tuple[int, ...]) -> None:
    coords, scores = codec.decode(np.zeros(shape, np.float32))
    assert coords.shape == (*shape[:2], 2) and scores.shape == shape[:2]
