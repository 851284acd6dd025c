"""Crop sizes mixed within a round: every batch draws one (H, W) from a list, so one set of weights
works at each (LPN is fully convolutional, LPN_SPEC §1.1). Also serves progressive resizing (the
first epochs at small crops only, then the round's own size)."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from lpn_core.errors import LpnError


def parse_sizes(items: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """['64x48', '128x96'] -> ((64, 48), (128, 96)); sides must be positive multiples of 16."""
    sizes = []
    for item in items:
        try:
            h, w = (int(v) for v in str(item).lower().split("x"))
        except ValueError:
            raise LpnError(f"crop size '{item}': expected HxW like 128x96") from None
        if h <= 0 or w <= 0 or h % 16 or w % 16:
            raise LpnError(f"crop size '{item}': both sides must be positive multiples of 16")
        sizes.append((h, w))
    return tuple(sizes)


class SizedBatches(Sampler[list[tuple[int, int]]]):
    """Batches of ``sampler``'s indices in its order, each tagged with one size index.

    The size of batch b is drawn from ``numpy.random.default_rng([seed, epoch, b])`` with ``probs``, so
    it depends only on (seed, epoch, b), like the samples' augmentation.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, probs: Sequence[float], seed: int, epoch: int) -> None:
        self.sampler, self.batch_size = sampler, batch_size
        self.probs = np.asarray(probs, np.float64) / np.sum(probs)
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = list(self.sampler)
        for b, start in enumerate(range(0, len(order), self.batch_size)):
            size = int(np.random.default_rng([self.seed, self.epoch, b, 7]).choice(len(self.probs), p=self.probs))
            yield [(i, size) for i in order[start:start + self.batch_size]]
