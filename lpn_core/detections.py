"""Person detections and the detector interface, shared by every detector module and the pipeline.

Kept apart from ``detector.py`` (which loads detectors) so that detector implementations such as
``yolox.py`` can import the types without importing the loader that imports them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class Detections:
    """Person boxes (N, 4) float32 x1 y1 x2 y2 frame px, and scores (N,) float32 in [0, 1]."""

    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def top(self, k: int) -> Detections:
        """The ``k`` highest-scoring detections, best first."""
        order = np.argsort(-self.scores, kind="stable")[:max(k, 0)]
        return Detections(self.boxes[order], self.scores[order])


class PersonDetector(Protocol):
    """Frame (H, W, 3) uint8 BGR -> Detections. ``full_frame`` detectors see no people, only the frame."""

    name: str
    full_frame: bool

    def __call__(self, image: np.ndarray) -> Detections: ...
