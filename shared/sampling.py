"""Length-grouped batches: similar-length rows share a batch, so dynamic padding wastes little compute."""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffle, cut into mega-batches of `mega` batches, sort each by length, then shuffle the batches.

    The order depends only on (seed, epoch), which is what exact resume and multi-process sharding need;
    every process builds the same batches and accelerate hands each process its share.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, mega: int = 50):
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.mega = mega
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        span = self.batch_size * self.mega
        batches = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start:start + span], key=lambda i: self.lengths[i], reverse=True)
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        # Keep the one short tail batch last so every other batch is full (as a plain sampler would).
        tail = [b for b in batches if len(b) < self.batch_size]
        full = [b for b in batches if len(b) == self.batch_size]
        permutation = torch.randperm(len(full), generator=generator).tolist()
        yield from [full[i] for i in permutation] + tail
