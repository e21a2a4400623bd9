"""Held-out splits: validation and test carved from train (seeded, stratified or by group), hub test splits,
the splits' signatures a resumed run is checked against, and the --max_*_samples limits."""
from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset, DatasetDict

from shared.inputs.data import DataError


def ensure_validation(data: DatasetDict, cfg, stratify_column: str | None = None,
                      group_column: str | None = None) -> DatasetDict:
    """Carve a seeded (and, where labels allow, stratified) validation split if none was given, and a
    --test_split test split out of what train has left, so the two never share a row. With `group_column`,
    rows with the same value in it (QA's questions on one paragraph) stay on one side of every split."""
    data = _hub_test_split(data, cfg)
    rows = len(data["train"])  # --test_split is a fraction of the training data as given
    if "validation" not in data:
        if cfg.validation_split <= 0:
            raise DataError("no validation data: give --validation_file, or --validation_split > 0")
        train, validation = _carve(data["train"], cfg.validation_split, cfg.seed, stratify_column, group_column)
        data = DatasetDict({**data, "train": train, "validation": validation})
    if cfg.test_split:
        if "test" in data:
            raise DataError("--test_split carves a test set from train, but test data was given as well; use one")
        size = max(1, round(cfg.test_split * rows))
        train, test = _carve(data["train"], size, cfg.seed, stratify_column, group_column)
        data = DatasetDict({**data, "train": train, "test": test})
    return DatasetDict({k: data[k] for k in ("train", "validation", "test") if k in data})


def _hub_test_split(data: DatasetDict, cfg) -> DatasetDict:
    """A hub dataset's held-out splits: --test_split_name names the test set; an unnamed `test` split
    serves as validation where there is none (many hub test splits carry no labels, so none is scored unasked)."""
    if not cfg.dataset_name:
        return data
    name, splits = cfg.test_split_name, dict(data)
    if name and name not in splits:
        raise DataError(f"--test_split_name {name}: {cfg.dataset_name} has the splits {sorted(splits)}")
    test = splits.pop(name) if name else None
    if "validation" not in splits and "test" in splits:
        splits["validation"] = splits.pop("test")
    splits.pop("test", None)
    return DatasetDict({**splits, **({"test": test} if test is not None else {})})


def _carve(dataset: Dataset, size: float | int, seed: int, stratify_column: str | None,
           group_column: str | None = None) -> tuple[Dataset, Dataset]:
    """(rest, held out): a seeded split by whole groups of `group_column` where one is given (no caller also
    stratifies), else stratified by a ClassLabel column where every class allows it."""
    if group_column:
        return _carve_groups(dataset, size, seed, group_column)
    stratify = stratify_column if stratify_column and isinstance(
        dataset.features.get(stratify_column), ClassLabel) else None
    try:
        parts = dataset.train_test_split(test_size=size, seed=seed, stratify_by_column=stratify)
    except ValueError:  # too few examples of some class to stratify: fall back to a plain seeded split
        parts = dataset.train_test_split(test_size=size, seed=seed)
    return parts["train"], parts["test"]


def _carve_groups(dataset: Dataset, size: float | int, seed: int, column: str) -> tuple[Dataset, Dataset]:
    """(rest, held out) by whole groups of equal `column` values, drawn in a seeded order until the held-out
    rows reach the size (a fraction rounds up, as datasets' train_test_split does); one group may overshoot."""
    keys = dataset[column]
    counts = Counter(keys)  # insertion-ordered: the draw depends on the data and the seed only
    groups = list(counts)
    if len(groups) < 2:
        raise DataError(f"every row has the same {column!r}: there is nothing to hold out without sharing it "
                        f"with training; give a validation/test file")
    wanted = size if isinstance(size, int) else math.ceil(size * len(keys))
    held, rows = set(), 0
    for group in random.Random(seed).sample(groups, len(groups))[:-1]:  # the last one always trains
        if rows >= wanted:
            break
        held.add(group)
        rows += counts[group]
    sides = ([], [])
    for index, key in enumerate(keys):
        sides[key in held].append(index)
    return dataset.select(sides[0]), dataset.select(sides[1])


def split_signatures(data: DatasetDict) -> dict[str, dict]:
    """Rows and a content hash of each held-out split (images by file name or bytes, so moving the data
    folder changes nothing), recorded in the run folder."""
    signatures = {}
    for name, dataset in data.items():
        if name == "train":
            continue
        images = [column for column, feature in dataset.features.items() if isinstance(feature, datasets.Image)]
        for column in images:
            dataset = dataset.cast_column(column, datasets.Image(decode=False))
        digest = hashlib.sha1()
        for batch in dataset.iter(batch_size=1000):
            for column in images:
                batch[column] = [_image_key(value) for value in batch[column]]
            digest.update(json.dumps(batch, sort_keys=True, default=str).encode())
        signatures[name] = {"rows": len(dataset), "sha1": digest.hexdigest()}
    return signatures


def _image_key(value: dict | None) -> str | None:
    if not value:
        return None
    return Path(value["path"]).name if value.get("path") else hashlib.sha1(value["bytes"]).hexdigest()


def check_split_signatures(path: Path, current: dict[str, dict]) -> None:
    """A resumed run must validate and test on the splits it began with (those recorded at `path`)."""
    if not path.is_file():
        return
    recorded = json.loads(path.read_text())
    changed = sorted(name for name in set(recorded) | set(current) if recorded.get(name) != current.get(name))
    if changed:
        raise DataError(f"{path}: the {', '.join(changed)} split(s) differ from those this run began with; resume "
                        "with the same data, --seed, --validation_split and --test_split, or start a new run")


def limit_samples(data: DatasetDict, cfg) -> DatasetDict:
    """Apply --max_train_samples / --max_eval_samples (first N rows, so runs are comparable)."""
    if cfg.max_train_samples:
        data["train"] = data["train"].select(range(min(cfg.max_train_samples, len(data["train"]))))
    if cfg.max_eval_samples:
        data["validation"] = data["validation"].select(range(min(cfg.max_eval_samples, len(data["validation"]))))
    return data
