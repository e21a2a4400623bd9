"""Loading local files and hub datasets into a validated DatasetDict with train, validation and maybe test."""
from __future__ import annotations

import hashlib
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
    project = Path(__file__).resolve().parents[2]  # shared/inputs/data.py -> the project root
    default = project.parent / "shared" / "data"
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
    for split, path in (("validation", cfg.validation_file), ("test", cfg.test_file)):
        if path:
            splits[split], sources[split] = load_table(path), str(path)
    return DatasetDict(splits), sources


def ensure_validation(data: DatasetDict, cfg, stratify_column: str | None = None) -> DatasetDict:
    """Carve a seeded (and, where labels allow, stratified) validation split if none was given, and a
    --test_split test split out of what train has left, so the two never share a row."""
    data = _hub_test_split(data, cfg)
    rows = len(data["train"])  # --test_split is a fraction of the training data as given
    if "validation" not in data:
        if cfg.validation_split <= 0:
            raise DataError("no validation data: give --validation_file, or --validation_split > 0")
        train, validation = _carve(data["train"], cfg.validation_split, cfg.seed, stratify_column)
        data = DatasetDict({**data, "train": train, "validation": validation})
    if cfg.test_split:
        if "test" in data:
            raise DataError("--test_split carves a test set from train, but test data was given as well; use one")
        size = max(1, round(cfg.test_split * rows))
        train, test = _carve(data["train"], size, cfg.seed, stratify_column)
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


def _carve(dataset: Dataset, size: float | int, seed: int, stratify_column: str | None) -> tuple[Dataset, Dataset]:
    """(rest, held out): a seeded split, stratified by a ClassLabel column where every class allows it."""
    stratify = stratify_column if stratify_column and isinstance(
        dataset.features.get(stratify_column), ClassLabel) else None
    try:
        parts = dataset.train_test_split(test_size=size, seed=seed, stratify_by_column=stratify)
    except ValueError:  # too few examples of some class to stratify: fall back to a plain seeded split
        parts = dataset.train_test_split(test_size=size, seed=seed)
    return parts["train"], parts["test"]


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


def read_label_names(path: Path) -> list[str] | None:
    """A labels.json beside the data ({"0": "negative", ...} or {"id2label": {...}}) gives label names."""
    if not path.is_file():
        return None
    try:
        mapping = json.loads(path.read_text())
        mapping = mapping.get("id2label", mapping)
        ids = sorted(mapping, key=int)
    except (UnicodeDecodeError, ValueError, AttributeError, TypeError) as err:
        raise DataError(f"{path}: expected {{\"0\": \"name\", ...}} or {{\"id2label\": {{...}}}} "
                        f"({type(err).__name__}: {err})") from None
    if [int(k) for k in ids] != list(range(len(ids))):
        raise DataError(f"{path}: label ids must be 0..N-1, got {[int(k) for k in ids]}")
    return [str(mapping[k]) for k in ids]


def inside_data_folder(path: Path, base: Path, allow: bool, where: str) -> Path:
    """`path` unless it leads (by ../, an absolute path or a symlink) out of `base`. Checked before the file
    is looked for, so the error says nothing about what exists outside."""
    if allow or path.resolve().is_relative_to(base.resolve()):
        return path
    raise DataError(f"{where}: {path} is outside the data folder {base}; pass --allow_paths_outside_data "
                    "to read files from elsewhere")
