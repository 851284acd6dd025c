"""Stable person ids across frames (IoU/OKS + Hungarian matching) and One-Euro smoothing per track.

One-Euro (Casiez et al., CHI 2012) with MediaPipe's pose-landmark defaults (ANCHORS §6: min_cutoff
0.1 Hz, beta 40, d_cutoff 1 Hz), value-scaled like MediaPipe: the speed that opens the filter is
measured in person sizes per second, so the same settings work for near and far people.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from scipy.optimize import linear_sum_assignment

from .types import Pose

# COCO keypoint OKS sigmas (cocoapi), nose .. right ankle
OKS_SIGMAS: Final = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89],
                             np.float64) / 10.0


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (M, N) of boxes (M, 4) and (N, 4), x1 y1 x2 y2."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def keypoint_oks(a: np.ndarray, b: np.ndarray, areas_b: np.ndarray, kpt_thr: float = 0.3) -> np.ndarray:
    """OKS matrix (M, N) between poses (M, 17, 3) and (N, 17, 3) over joints confident in both
    (0 where none is); ``areas_b`` (N,) px² is the scale, as in COCO's keypoint evaluation."""
    d2 = np.sum((a[:, None, :, :2].astype(np.float64) - b[None, :, :, :2]) ** 2, axis=3)  # (M, N, K)
    var = (2 * OKS_SIGMAS) ** 2 * np.maximum(np.asarray(areas_b, np.float64), 1.0)[None, :, None] * 2
    both = (a[:, None, :, 2] >= kpt_thr) & (b[None, :, :, 2] >= kpt_thr)
    count = both.sum(axis=2)
    return np.where(count > 0, np.sum(np.exp(-d2 / var) * both, axis=2) / np.maximum(count, 1), 0.0)


def _alpha(dt_s: float, cutoff_hz: np.ndarray | float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff_hz))
    return 1.0 / (1.0 + tau / dt_s)


@dataclass(slots=True)
class OneEuroFilter:
    """One-Euro low-pass over an array of any shape, timestamp-aware; ``scale`` (px) normalises speed."""

    min_cutoff: float = 0.1  # Hz: smoothing at rest (lower = smoother, more lag)
    beta: float = 40.0  # how fast the cutoff opens with speed (higher = less lag when moving)
    d_cutoff: float = 1.0  # Hz: low-pass of the speed estimate
    _x: np.ndarray | None = None
    _dx: np.ndarray | None = None
    _t: float | None = None

    def __call__(self, x: np.ndarray, t_s: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or self._dx is None or self._t is None or self._x.shape != x.shape:
            return self._reset(x, t_s)
        if t_s <= self._t:  # no time has passed: nothing new to filter
            return self._x.copy()
        dt = t_s - self._t
        dx = (x - self._x) / (dt * max(scale, 1e-6))
        self._dx = self._dx + _alpha(dt, self.d_cutoff) * (dx - self._dx)
        alpha = _alpha(dt, self.min_cutoff + self.beta * np.abs(self._dx))
        self._x = self._x + alpha * (x - self._x)
        self._t = t_s
        return self._x.copy()

    def _reset(self, x: np.ndarray, t_s: float) -> np.ndarray:
        self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t_s
        return x.copy()


@dataclass(slots=True)
class Track:
    """One person followed across frames."""

    track_id: int
    box: np.ndarray
    keypoints: np.ndarray
    last_frame: int
    filter: OneEuroFilter = field(default_factory=OneEuroFilter)


@dataclass(slots=True)
class Tracker:
    """Assigns track ids (Hungarian on max(IoU, OKS)) and smooths each track's keypoints.

    A track survives ``max_missing`` frames without a match. The One-Euro state is updated even with
    ``smoothing`` off, so switching it on mid-stream does not jump.
    """

    match_thr: float = 0.3
    max_missing: int = 10
    smoothing: bool = True
    min_cutoff: float = 0.1
    beta: float = 40.0
    d_cutoff: float = 1.0
    tracks: list[Track] = field(default_factory=list)
    _next_id: int = 1
    _frame: int = 0

    def reset(self) -> None:
        """Forget every track (new source)."""
        self.tracks, self._next_id, self._frame = [], 1, 0

    def update(self, poses: list[Pose], timestamp_s: float) -> list[Pose]:
        """Poses of one frame -> the same poses with ``track_id`` set and (optionally) smoothed keypoints."""
        self._frame += 1
        self.tracks = [t for t in self.tracks if self._frame - t.last_frame <= self.max_missing]
        assigned = self._match(poses)
        out = []
        for i, pose in enumerate(poses):
            track = assigned.get(i)
            if track is None:
                track = Track(self._next_id, pose.box, pose.keypoints, self._frame,
                              OneEuroFilter(self.min_cutoff, self.beta, self.d_cutoff))
                self._next_id += 1
                self.tracks.append(track)
            box = np.asarray(pose.box, np.float64)
            scale = 0.5 * float((box[2] - box[0]) + (box[3] - box[1]))
            xy = track.filter(pose.keypoints[:, :2], timestamp_s, scale)
            track.box, track.keypoints, track.last_frame = pose.box, pose.keypoints, self._frame
            keypoints = pose.keypoints
            if self.smoothing:
                keypoints = np.concatenate([xy, pose.keypoints[:, 2:]], axis=1).astype(np.float32)
            out.append(dataclasses.replace(pose, keypoints=keypoints, track_id=track.track_id))
        return out

    def _match(self, poses: list[Pose]) -> dict[int, Track]:
        if not poses or not self.tracks:
            return {}
        boxes = np.stack([p.box for p in poses])
        sim = box_iou(np.stack([t.box for t in self.tracks]), boxes)
        areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
        oks = keypoint_oks(np.stack([t.keypoints for t in self.tracks]), np.stack([p.keypoints for p in poses]), areas)
        sim = np.maximum(sim, oks)
        rows, cols = linear_sum_assignment(-sim)
        return {int(c): self.tracks[r] for r, c in zip(rows, cols) if sim[r, c] >= self.match_thr}
