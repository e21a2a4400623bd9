"""Image classification data: folders, (image path, label) tables and hub datasets as checked image/label splits."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import datasets
from datasets import ClassLabel, DatasetDict

from shared.toolkit.config import ConfigError
from shared.inputs.data import (DataError, inside_data_folder, kind_of, load_hub_or_files, read_label_names,
                                require_columns, row_name)
from shared.inputs.vision import check_image_column, load_image_folders

Describe = Callable[[int], str]


def load_raw(cfg, default_dir: Callable[[], Path]) -> tuple[object, DatasetDict, dict[str, Describe], dict[str, str]]:
    """(the config the data was read with, splits with an `image` (datasets.Image) and a raw `label` column,
    how to name each row in errors, split -> the folder, file or hub split it was read from).

    The config is `cfg` itself, or for the embedded default a copy naming the sample folders: `cfg` is
    never written.
    """
    given = [name for name in ("dataset_name", "train_dir", "train_file") if getattr(cfg, name)]
    if len(given) > 1:
        raise ConfigError(f"give one data source, not {['--' + s for s in given]}")
    if not given:  # the embedded default: synthetic shapes drawn once into the cache
        folder = default_dir()
        cfg = dataclasses.replace(cfg, train_dir=str(folder / "train"), validation_dir=str(folder / "validation"),
                                  image_column="image", label_column="label")
    if cfg.train_dir:
        data = load_image_folders(cfg.train_dir, cfg.validation_dir, cfg.test_dir, cfg.allow_paths_outside_data)
        folders = {"train": cfg.train_dir, "validation": cfg.validation_dir, "test": cfg.test_dir}
        return cfg, data, {split: (lambda row: "") for split in data}, {split: str(folders[split]) for split in data}
    if cfg.validation_dir or cfg.test_dir:
        raise ConfigError("--validation_dir and --test_dir go with --train_dir; with --train_file use "
                          "--validation_file and --test_file")
    data, where = load_hub_or_files(cfg)
    for split, dataset in data.items():  # label lists are multi-label data, checked with the labels
        require_columns(dataset, [cfg.image_column, cfg.label_column], where[split], nested=(cfg.label_column,))
    if cfg.train_file:
        data = DatasetDict({split: _paths_to_images(ds, cfg.image_column, where[split],
                                                                   cfg.allow_paths_outside_data) for split, ds in data.items()})
        describe = {split: (lambda row, s=where[split]: row_name(s, row)) for split in data}
    else:
        describe = {split: (lambda row, s=where[split]: f"{s} row {row}") for split in data}
    renames = {cfg.image_column: "image", cfg.label_column: "label"}
    data = DatasetDict({k: v.rename_columns({a: b for a, b in renames.items() if a != b}) for k, v in data.items()})
    return cfg, data, describe, where


def _paths_to_images(dataset: datasets.Dataset, column: str, source: str, allow_outside: bool) -> datasets.Dataset:
    """Image paths (relative to the table's folder, or absolute) checked to exist, cast to datasets.Image."""
    base = Path(source).parent
    paths = []
    for row, value in enumerate(dataset[column]):
        if value is None or not str(value).strip():
            raise DataError(f"{row_name(source, row)}: empty image path in column {column!r}")
        if not isinstance(value, str):
            raise DataError(f"{row_name(source, row)}: the image path in column {column!r} must be a string, got "
                            f"{kind_of(value)}")
        path = inside_data_folder(base / str(value).strip(), base, allow_outside, row_name(source, row))
        if not path.is_file():
            raise DataError(f"{row_name(source, row)}: image file {path} not found (paths are relative to {base})")
        paths.append(str(path))
    return dataset.remove_columns(column).add_column(column, paths).cast_column(column, datasets.Image())


def check_images(data: DatasetDict, describe: dict[str, Describe]) -> None:
    """Open every image once (cheap verify, see shared.inputs.vision.check_image) before any training step."""
    for split, dataset in data.items():
        check_image_column(dataset, "image", describe[split])


# ---------------------------------------------------------------- labels
def encode_labels(data: DatasetDict, cfg, describe: dict[str, Describe]) -> DatasetDict:
    """Single-label: a ClassLabel column. Multi-label: a list of ClassLabel ids per image."""
    if cfg.problem_type == "multi_label_classification":
        return _encode_multi(data, cfg, describe)
    feature = data["train"].features["label"]
    if isinstance(feature, ClassLabel):
        if feature.num_classes < 2:
            raise DataError(f"{cfg.train_dir or cfg.dataset_name}: the training data has a single class "
                            f"{feature.names}; classification needs at least two (one folder per class)")
        _check_validation_classes(data, describe)
        return data
    if isinstance(feature, datasets.List):
        raise DataError(f"{describe['train'](0) or 'train'}: labels are lists; for multi-label data pass "
                        "--problem_type multi_label_classification")
    values = list(data["train"]["label"])
    if None in values:
        raise DataError(f"{describe['train'](values.index(None))}: missing label")
    _check_plain_labels(data, describe, multi=False)
    names = _names(cfg, values)
    if len(names) < 2:
        raise DataError(f"{cfg.train_file}: column {cfg.label_column!r} has a single class {names}; "
                        "classification needs at least two")
    index = {name: i for i, name in enumerate(names)}
    for split, dataset in data.items():
        for row, value in enumerate(dataset["label"]):
            if str(value) not in index:
                raise DataError(f"{describe[split](row)}: unknown label {value!r}; the training labels are {names}")
    return _with_feature(data, ClassLabel(names=names), lambda values: [index[str(v)] for v in values])


def _encode_multi(data: DatasetDict, cfg, describe: dict[str, Describe]) -> DatasetDict:
    feature = data["train"].features["label"]
    if isinstance(feature, datasets.List) and isinstance(feature.feature, ClassLabel):
        return data
    if isinstance(feature, ClassLabel):
        raise ConfigError("--problem_type multi_label_classification needs several labels per image "
                          "(a list, or a string joined by --label_separator); these labels are single classes")

    def split_labels(value) -> list[str]:
        if value is None:
            return []
        parts = value if isinstance(value, list) else str(value).split(cfg.label_separator)
        return [str(p).strip() for p in parts if str(p).strip()]

    _check_plain_labels(data, describe, multi=True)
    names = sorted({name for value in data["train"]["label"] for name in split_labels(value)})
    if len(names) < 2:
        raise DataError(f"{describe['train'](0)}: multi-label data needs at least two label names, found {names}")
    index = {name: i for i, name in enumerate(names)}
    for split, dataset in data.items():
        for row, value in enumerate(dataset["label"]):
            unknown = [n for n in split_labels(value) if n not in index]
            if unknown:
                raise DataError(f"{describe[split](row)}: unknown label(s) {unknown}; the training labels are {names}")
    return _with_feature(data, datasets.List(ClassLabel(names=names)),
                         lambda values: [[index[n] for n in split_labels(v)] for v in values])


def _check_plain_labels(data: DatasetDict, describe: dict[str, Describe], multi: bool) -> None:
    """Each label is a string or a number (multi-label: also a list of them), not an object: str() of one would
    silently become a class name."""
    for split, dataset in data.items():
        for row, value in enumerate(dataset["label"]):
            items = value if multi and isinstance(value, list) else [value]
            bad = next((v for v in items if isinstance(v, (dict, list))), None)
            if bad is not None:
                raise DataError(f"{describe[split](row)}: a label must be a string or a number"
                                f"{' (or a list of them)' if multi else ''}, got {kind_of(bad)}")


def _with_feature(data: DatasetDict, feature, encode) -> DatasetDict:
    def convert(dataset):
        features = dataset.features.copy()
        features["label"] = feature
        # input_columns: only the labels are read and rewritten; the images are never decoded here
        return dataset.map(lambda labels: {"label": encode(labels)}, input_columns="label", batched=True,
                           features=features, desc="encoding labels")

    return DatasetDict({k: convert(v) for k, v in data.items()})


def _names(cfg, values) -> list[str]:
    """Class names in id order: integer labels keep their ids (names from a labels.json beside the train
    file when there is one), other labels are sorted."""
    distinct = {str(v) for v in values}
    if all(v.isdigit() for v in distinct):
        count = max(int(v) for v in distinct) + 1
        named = read_label_names(Path(cfg.train_file).parent / "labels.json") if cfg.train_file else None
        return named if named and len(named) >= count else [str(i) for i in range(count)]
    return sorted(distinct)


def _check_validation_classes(data: DatasetDict, describe: dict[str, Describe]) -> None:
    """A validation class with no training example cannot be learnt: refuse it, naming an image."""
    if "validation" not in data:
        return
    seen = set(data["train"]["label"])
    names = data["train"].features["label"].names
    for row, label in enumerate(data["validation"]["label"]):
        if label not in seen:
            image = data["validation"].cast_column("image", datasets.Image(decode=False))[row]["image"]
            where = " ".join(filter(None, [describe["validation"](row), image.get("path")]))
            raise DataError(f"{where}: class {names[label]!r} has no training example")
