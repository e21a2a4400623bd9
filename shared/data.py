"""Loading local files and hub datasets into a validated DatasetDict with train and validation."""
from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset, DatasetDict

TABLE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}


class DataError(ValueError):
    """Bad input data: the message names the file, the row and the reason."""


def benchmark_data_dir() -> Path:
    """Where the real benchmark datasets live: $FINETUNE_SUITE_DATA, default ../shared/data."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("FINETUNE_SUITE_DATA", default))


def row_name(source: str, index: int) -> str:
    """A human row reference: CSV/TSV count the header line, JSONL counts from line 1."""
    suffix = Path(source).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return f"{source} row {index} (line {index + 2})"
    if suffix == ".jsonl":
        return f"{source} line {index + 1}"
    return f"{source} record {index}"


def load_table(path: str | os.PathLike) -> Dataset:
    """One CSV, TSV, JSON or JSONL file as a Dataset, with a clear error for missing or odd files."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    builder = TABLE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unsupported extension {path.suffix!r}; use one of {sorted(TABLE_BUILDERS)}")
    kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    if path.suffix.lower() == ".json" and _is_wrapped_json(path):
        kwargs["field"] = "data"
    try:
        return datasets.load_dataset(builder, data_files={"data": str(path)}, split="data", **kwargs)
    except Exception as err:  # pyarrow/pandas parse errors: say which file
        raise DataError(f"{path}: could not be parsed as {builder.upper()}: {err}") from err


def _is_wrapped_json(path: Path) -> bool:
    """True for a single JSON object holding its rows under "data" (a common export shape)."""
    with path.open() as handle:
        head = handle.read(1)
    if head != "{":
        return False
    try:
        return isinstance(json.loads(path.read_text()).get("data"), list)
    except json.JSONDecodeError:
        return False  # JSON lines in a .json file


def require_columns(dataset: Dataset, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {dataset.column_names}. "
                        "Rename them or pass the column flags (for example --text_column).")


def load_hub_or_files(cfg) -> tuple[DatasetDict, dict[str, str]]:
    """The raw splits and, for each, where it came from (used in error messages)."""
    if cfg.dataset_name:
        raw = datasets.load_dataset(cfg.dataset_name, cfg.dataset_config_name)
        return DatasetDict({k: v for k, v in raw.items()}), {k: f"{cfg.dataset_name}[{k}]" for k in raw}
    if not cfg.train_file:
        raise DataError("give --train_file (and optionally --validation_file) or --dataset_name")
    splits, sources = {"train": load_table(cfg.train_file)}, {"train": str(cfg.train_file)}
    if cfg.validation_file:
        splits["validation"] = load_table(cfg.validation_file)
        sources["validation"] = str(cfg.validation_file)
    return DatasetDict(splits), sources


def ensure_validation(data: DatasetDict, cfg, stratify_column: str | None = None) -> DatasetDict:
    """Carve a seeded (and, where labels allow, stratified) validation split if none was given."""
    if "validation" in data:
        return data
    if "test" in data and cfg.dataset_name:
        return DatasetDict({"train": data["train"], "validation": data["test"]})
    if cfg.validation_split <= 0:
        raise DataError("no validation data: give --validation_file, or --validation_split > 0")
    stratify = stratify_column if stratify_column and isinstance(
        data["train"].features.get(stratify_column), ClassLabel) else None
    try:
        parts = data["train"].train_test_split(test_size=cfg.validation_split, seed=cfg.seed,
                                               stratify_by_column=stratify)
    except ValueError:  # too few examples of some class to stratify: fall back to a plain seeded split
        parts = data["train"].train_test_split(test_size=cfg.validation_split, seed=cfg.seed)
    return DatasetDict({"train": parts["train"], "validation": parts["test"]})


def limit_samples(data: DatasetDict, cfg) -> DatasetDict:
    """Apply --max_train_samples / --max_eval_samples (first N rows, so runs are comparable)."""
    if cfg.max_train_samples:
        data["train"] = data["train"].select(range(min(cfg.max_train_samples, len(data["train"]))))
    if cfg.max_eval_samples:
        data["validation"] = data["validation"].select(range(min(cfg.max_eval_samples, len(data["validation"]))))
    return data


def read_label_names(path: Path) -> list[str] | None:
    """A labels.json beside the data ({"0": "negative", ...} or {"id2label": {...}}) gives label names."""
    if not path.is_file():
        return None
    mapping = json.loads(path.read_text())
    mapping = mapping.get("id2label", mapping)
    return [str(mapping[k]) for k in sorted(mapping, key=int)]
