"""Batching: length-grouped batches (little padding) and per-batch seeded fetching (exact resume)."""
from __future__ import annotations

import hashlib
import random
from typing import Iterator

import numpy as np
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


class SeededFetch(torch.utils.data.Dataset):
    """Fetches each batch under its own seed, drawn from (seed, epoch, the batch's row indices).

    Random augmentations run while a batch is fetched, and accelerate fetches one batch ahead of the
    one being trained on; drawn from the global RNG, the next batch's crops would come out of the
    state a checkpoint saves, and a resumed run would draw them again from a different state. Seeded
    per batch, they are the same in an unbroken run, a resumed one, and under any number of workers.
    The global torch, numpy and python RNG states are restored afterwards, so dropout is unaffected.
    """

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list:
        key = hashlib.blake2b(repr((self.seed, self.epoch, list(indices))).encode(), digest_size=4).digest()
        seed = int.from_bytes(key, "little")
        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                random.seed(seed)
                np.random.seed(seed)
                fetch = getattr(self.dataset, "__getitems__", None)
                return fetch(list(indices)) if fetch else [self.dataset[i] for i in indices]
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
