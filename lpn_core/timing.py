"""Pure timing helpers: per-stage stopwatch and a sliding-window FPS meter (the GUI and CLI only show them)."""
from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager
from typing import Iterator


class StageTimer:
    """Accumulates milliseconds per named stage: ``with timer("detect"): ...``; read ``timer.ms``."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[stage] = self.ms.get(stage, 0.0) + (time.perf_counter() - start) * 1e3


class FpsMeter:
    """Frames per second over the last ``window`` ticks (timestamps in seconds, monotonic)."""

    def __init__(self, window: int = 30) -> None:
        self._stamps: deque[float] = deque(maxlen=max(2, window))

    def tick(self, now_s: float | None = None) -> float | None:
        """Record one frame; return the current rate, or None until two frames were seen."""
        self._stamps.append(time.perf_counter() if now_s is None else now_s)
        return self.fps

    @property
    def fps(self) -> float | None:
        if len(self._stamps) < 2 or self._stamps[-1] <= self._stamps[0]:
            return None
        return (len(self._stamps) - 1) / (self._stamps[-1] - self._stamps[0])

    def reset(self) -> None:
        self._stamps.clear()
