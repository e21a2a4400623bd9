"""Training batches: length-grouped batches (little padding) and class-balanced draws, both seeded by
(seed, epoch) so a resumed run replays the same order, and per-batch seeded fetching (exact resume)."""
from __future__ import annotations

import hashlib
import random
from collections import Counter
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from shared.toolkit.config import ConfigError


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffle, cut into mega-batches of `mega` batches, sort each by length, then shuffle the batches.

    The order depends only on (seed, epoch), which is what exact resume and multi-process sharding need;
    every process builds the same batches and accelerate hands each process its share.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, mega: int = 50,
                 weights: torch.Tensor | None = None):
        self.lengths = lengths
        self.weights = weights  # per-row draw weights (--weighted_sampler): rows drawn with replacement
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
        order = _draw(len(self.lengths), self.weights, generator)
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


def _draw(n: int, weights: torch.Tensor | None, generator: torch.Generator) -> list[int]:
    """A permutation, or n weighted draws with replacement when row weights are given."""
    if weights is None:
        return torch.randperm(n, generator=generator).tolist()
    return torch.multinomial(weights, n, replacement=True, generator=generator).tolist()


class WeightedEpochSampler(Sampler[int]):
    """n rows drawn with replacement in proportion to `weights`; the draw depends only on (seed, epoch)."""

    def __init__(self, weights: torch.Tensor, seed: int):
        self.weights, self.seed, self.epoch = weights, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.weights)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from _draw(len(self.weights), self.weights, generator)


def balanced_row_weights(label_ids: list[int] | None, n_rows: int) -> torch.Tensor:
    """Weight 1 / count(class) per row, so each class is drawn equally often in expectation."""
    if label_ids is None:
        raise ConfigError("--weighted_sampler needs one class label per training row; this task's labels are not "
                          "per-row classes (use --class_weights or --loss focal instead)")
    if len(label_ids) != n_rows:
        raise ConfigError(f"--weighted_sampler: {len(label_ids)} labels for {n_rows} preprocessed training rows; "
                          "this task turns rows into several features, so rows cannot be re-weighted")
    counts = Counter(label_ids)
    return torch.tensor([1.0 / counts[label] for label in label_ids], dtype=torch.double)


def train_batching(cfg, lengths: list[int] | None, label_ids: list[int] | None, n_rows: int):
    """(sampler to call set_epoch on or None, DataLoader batching kwargs) for the training loader."""
    weights = balanced_row_weights(label_ids, n_rows) if cfg.weighted_sampler else None
    if lengths:
        sampler = LengthGroupedBatchSampler(lengths, cfg.per_device_train_batch_size, cfg.seed, weights=weights)
        return sampler, {"batch_sampler": sampler}
    if weights is not None:
        sampler = WeightedEpochSampler(weights, cfg.seed)
        return sampler, {"sampler": sampler, "batch_size": cfg.per_device_train_batch_size}
    return None, {"batch_size": cfg.per_device_train_batch_size, "shuffle": True}


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
