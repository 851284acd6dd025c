"""Result dataclasses passed between the pipeline, the CLI and the GUI."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class Pose:
    """One person in one frame, in frame pixel coordinates."""

    keypoints: np.ndarray  # (17, 3) float32: x, y in frame pixels, score
    box: np.ndarray  # (4,) float32: x1, y1, x2, y2 in frame pixels
    score: float  # instance score (box score x mean confident joint score)
    track_id: int | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict: id, box, keypoints [[x, y, score], ...], score."""
        return {
            "id": self.track_id,
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "keypoints": [[round(float(x), 2), round(float(y), 2), round(float(s), 4)] for x, y, s in self.keypoints],
        }


@dataclass(slots=True)
class FrameResult:
    """Everything the pipeline knows about one frame."""

    index: int
    frame: np.ndarray  # (H, W, 3) uint8 BGR, the source frame (not drawn on)
    poses: list[Pose]
    times_ms: dict[str, float] = field(default_factory=dict)  # per stage: detect, crop, infer, decode, track, draw

    @property
    def total_ms(self) -> float:
        return float(sum(self.times_ms.values()))
