"""Data hygiene before training: duplicates, near-empty rows, overlap between train, validation and test,
labels, image sizes.

Written to <run>/data_report.json and summarised on stdout. Generic over any DatasetDict: a row's key is
every column but labels and ids (texts lower-cased, whitespace collapsed; images by file content), unless
the task's `row_key` hook says otherwise.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Callable

import datasets
from datasets import ClassLabel, DatasetDict

NOT_KEY_COLUMNS = {"label", "labels", "id", "idx"}
NEAR_EMPTY_CHARS = 3  # a text field with fewer non-space characters than this is near-empty
NEAR_EMPTY_PIXELS = 8  # an image with a side shorter than this is near-empty
MAX_IMAGE_HEADERS = 5000  # image sizes are read from at most this many rows per split
MAX_EXAMPLES = 5  # row numbers listed per finding


def _image_columns(dataset) -> list[str]:
    return [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Image)]


def _image_bytes(value: dict) -> bytes:
    if value.get("bytes"):
        return value["bytes"]
    return Path(value["path"]).read_bytes()


def _normalise(value) -> str:
    if isinstance(value, dict):
        return json.dumps({k: _normalise(v) for k, v in sorted(value.items())})
    if isinstance(value, (list, tuple)):
        return json.dumps([_normalise(v) for v in value])
    return re.sub(r"\s+", " ", str(value)).strip().lower()


def default_row_key(example: dict, image_columns: list[str]) -> str:
    parts = []
    for name in sorted(k for k in example if k not in NOT_KEY_COLUMNS):
        value = example[name]
        if name in image_columns and value is not None:
            parts.append(hashlib.sha1(_image_bytes(value)).hexdigest())
        else:
            parts.append(_normalise(value))
    return "\x1f".join(parts)


def _is_near_empty(example: dict, image_columns: list[str]) -> bool:
    for name, value in example.items():
        if name in NOT_KEY_COLUMNS or name in image_columns:
            continue
        if value is None or (isinstance(value, str) and len(value.strip()) < NEAR_EMPTY_CHARS):
            return True
    return False


def _image_sizes(dataset, columns: list[str]) -> dict:
    from PIL import Image

    stats = {}
    step = max(1, len(dataset) // MAX_IMAGE_HEADERS)
    for name in columns:
        sizes, modes, tiny = [], Counter(), []
        for row in range(0, len(dataset), step):
            value = dataset[row][name]
            with Image.open(io.BytesIO(_image_bytes(value))) as image:  # header only: no pixel decode
                sizes.append(image.size)
                modes[image.mode] += 1
            if min(image.size) < NEAR_EMPTY_PIXELS:
                tiny.append(row)
        describe = lambda values: {"min": min(values), "median": statistics.median(values), "max": max(values)}
        stats[name] = {"rows_read": len(sizes), "width": describe([w for w, _ in sizes]),
                       "height": describe([h for _, h in sizes]), "modes": dict(modes),
                       "tiny_images": len(tiny), "tiny_examples": tiny[:MAX_EXAMPLES]}
    return stats


def _label_counts(dataset) -> dict[str, int] | None:
    feature = dataset.features.get("label")
    if isinstance(feature, ClassLabel):
        counts = Counter(dataset["label"])
        return {name: counts[i] for i, name in enumerate(feature.names)}
    if isinstance(feature, datasets.List) and isinstance(feature.feature, ClassLabel):
        counts = Counter(i for ids in dataset["label"] for i in ids)
        return {name: counts[i] for i, name in enumerate(feature.feature.names)}
    return None


def _split_report(dataset, row_key: Callable[[dict], str]) -> tuple[dict, dict[str, int]]:
    images = _image_columns(dataset)
    raw = dataset.cast_column(images[0], datasets.Image(decode=False)) if images else dataset
    for name in images[1:]:
        raw = raw.cast_column(name, datasets.Image(decode=False))
    first_row: dict[str, int] = {}
    duplicates, conflicts, near_empty = [], [], []
    labels = raw["label"] if "label" in raw.column_names else None
    for row, example in enumerate(raw):
        key = row_key(example) or default_row_key(example, images)
        if key in first_row:
            duplicates.append(row)
            if labels is not None and labels[row] != labels[first_row[key]]:
                conflicts.append(row)
        else:
            first_row[key] = row
        if _is_near_empty(example, images):
            near_empty.append(row)
    report = {"rows": len(raw), "duplicate_rows": len(duplicates), "duplicate_examples": duplicates[:MAX_EXAMPLES],
              "conflicting_label_duplicates": len(conflicts), "near_empty_rows": len(near_empty),
              "near_empty_examples": near_empty[:MAX_EXAMPLES], "label_counts": _label_counts(dataset)}
    if images:
        report["image_sizes"] = _image_sizes(raw, images)
    return report, first_row


def build_data_report(data: DatasetDict, row_key: Callable[[dict], str | None], warnings: list[str] = ()) -> dict:
    """The report as a dict; `row_key(example)` may return None to use the default key; `warnings` are the task's."""
    splits, keys = {}, {}
    for name, dataset in data.items():
        splits[name], keys[name] = _split_report(dataset, row_key)
    report = {"splits": splits, "warnings": list(warnings)}
    for held_out, other in (("validation", "train"), ("test", "train"), ("test", "validation")):
        if held_out in keys and other in keys:
            overlap = sorted(row for key, row in keys[held_out].items() if key in keys[other])
            report[f"{held_out}_rows_in_{other}"] = len(overlap)
            pair = held_out if other == "train" else f"{held_out}_{other}"
            report[f"{pair}_overlap_examples"] = overlap[:MAX_EXAMPLES]
            if overlap:
                report["warnings"].append(f"{len(overlap)} {held_out} rows also appear in {other}: {held_out} "
                                          "metrics overstate how the model does on new data")
    for name, split in splits.items():
        if split["duplicate_rows"]:
            report["warnings"].append(f"{name}: {split['duplicate_rows']} duplicate rows "
                                      f"({split['conflicting_label_duplicates']} with another label)")
        if split["near_empty_rows"]:
            report["warnings"].append(f"{name}: {split['near_empty_rows']} near-empty rows")
    counts = (splits.get("train") or {}).get("label_counts")
    if counts and min(counts.values()) > 0 and max(counts.values()) / min(counts.values()) >= 5:
        report["warnings"].append(f"train labels are imbalanced (largest/smallest class "
                                  f"{max(counts.values()) / min(counts.values()):.1f}x): consider "
                                  "--class_weights balanced, --weighted_sampler or --loss focal")
    return report


def summary_lines(report: dict) -> list[str]:
    lines = ["data report:"]
    for name, split in report["splits"].items():
        line = (f"  {name}: {split['rows']} rows, {split['duplicate_rows']} duplicates, "
                f"{split['near_empty_rows']} near-empty")
        if split["label_counts"]:
            line += ", labels " + ", ".join(f"{k} {v}" for k, v in list(split["label_counts"].items())[:10])
        for column, sizes in split.get("image_sizes", {}).items():
            line += (f", {column} width {sizes['width']['min']}-{sizes['width']['max']} "
                     f"height {sizes['height']['min']}-{sizes['height']['max']}")
        lines.append(line)
    for held_out, other in (("validation", "train"), ("test", "train"), ("test", "validation")):
        if f"{held_out}_rows_in_{other}" in report:
            lines.append(f"  {held_out} rows also in {other}: {report[f'{held_out}_rows_in_{other}']}")
    lines += [f"  warning: {w}" for w in report["warnings"]]
    return lines


def write_data_report(data: DatasetDict, row_key: Callable[[dict], str | None], run_dir: Path,
                      log: Callable[[str], None] = print, warnings: list[str] = ()) -> dict:
    report = build_data_report(data, row_key, warnings)
    (Path(run_dir) / "data_report.json").write_text(json.dumps(report, indent=1, default=str))
    log("\n".join(summary_lines(report)))
    return report
