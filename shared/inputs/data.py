"""Loading local files and hub datasets into a validated DatasetDict with train, validation and maybe test."""
from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import datasets
from datasets import Dataset, DatasetDict

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
    """One CSV, TSV, JSON or JSONL file as a Dataset, with a clear error for missing or odd files: text that is
    not UTF-8, rows that do not parse and a column whose rows disagree in type name the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    builder = TABLE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unsupported extension {path.suffix!r}; use one of {sorted(TABLE_BUILDERS)}")
    check_text_file(path)
    suffix = path.suffix.lower()
    kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
    layout = _json_layout(path) if suffix == ".json" else "lines" if suffix == ".jsonl" else None
    if layout == "wrapped":
        kwargs["field"] = "data"
    if layout == "lines":
        _check_json_lines(path, first_only=True)  # the rest only on failure: a full scan costs as much as the load
    try:
        dataset = datasets.load_dataset(builder, data_files={"data": str(path)}, split="data", **kwargs)
    except Exception as err:  # pyarrow/pandas parse errors: say which file, and the line where one can be found
        if layout == "lines":
            _check_json_lines(path)
        raise DataError(f"{path}: could not be parsed as {builder.upper()} ({_root_cause(err)})") from None
    _check_one_type_per_column(dataset, str(path))
    return dataset


def _root_cause(err: BaseException) -> str:
    """The first line of the innermost error (pandas names the line; datasets' wrapper says nothing)."""
    while (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__
    text = (str(err).strip().splitlines() or [""])[0]
    if "corresponds to no data" in text or "No columns to parse" in text:
        return "the file holds no rows"
    return f"{type(err).__name__}: {text}"


def _json_layout(path: Path) -> str:
    """A .json table is a list of row objects ("rows"; or columns: an object of lists), one object holding its
    rows under "data" (a common export shape: "wrapped"), or JSON lines in a .json file ("lines")."""
    text = read_text(path)
    try:
        top = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # JSON lines in a .json file
            _check_json_lines(path)
            return "lines"
        raise DataError(f"{path} line {err.lineno} column {err.colno}: not valid JSON ({_reason(err)})") from None
    wrapped = isinstance(top, dict) and isinstance(top.get("data"), list)
    rows = top["data"] if wrapped else top
    if not isinstance(rows, (list, dict)):
        raise DataError(f"{path}: expected a list of rows (JSON objects), got {kind_of(rows)}")
    for index, row in enumerate(rows if isinstance(rows, list) else []):
        if not isinstance(row, dict):
            raise DataError(f"{path} record {index}: expected a row (a JSON object), got {kind_of(row)}")
    return "wrapped" if wrapped else "rows"


def json_lines(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of JSON-lines text, else DataError naming the line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path} line {number}: not valid JSON ({_reason(err)} at column {err.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {number}: expected one JSON object per line, got {kind_of(row)}")
        yield number, row


def _check_json_lines(path: Path, first_only: bool = False) -> None:
    """Every non-blank line of a JSON-lines file is one JSON object (or only the first, for a quick sniff)."""
    with path.open(encoding="utf-8-sig") as handle:
        for _ in json_lines(path, handle):
            if first_only:
                return


def _check_one_type_per_column(dataset: Dataset, source: str) -> None:
    """datasets keeps a column whose rows disagree in type (a string here, an object there) as Json values;
    refuse the first row that differs from the column's first value."""
    for column, feature in dataset.features.items():
        if not isinstance(feature, datasets.Json):
            continue
        first = None
        for index, value in enumerate(dataset[column]):
            if value is None:
                continue
            if first is None:
                first = (index, kind_of(value))
            elif kind_of(value) != first[1]:
                raise DataError(f"{row_name(source, index)}: column {column!r} holds {kind_of(value)} here but "
                                f"{first[1]} in {row_name(source, first[0]).removeprefix(source + ' ')}; "
                                "every row must give it the same type")


def _reason(err: json.JSONDecodeError) -> str:
    """json's message without its dangling "starting at" (the position is given as line and column)."""
    return err.msg.removesuffix(" at").removesuffix(" starting")


def kind_of(value) -> str:
    """A JSON-ish name for a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "an object" if isinstance(value, dict) else f"a {type(value).__name__}"


# ---------------------------------------------------------------- text files
def check_text_file(path: Path, chunk: int = 1 << 20) -> None:
    """DataError naming the line unless `path` is UTF-8 text without NUL bytes (a binary file given a text suffix,
    or text saved in another encoding). Read in chunks: about 850 MB/s here, so a large table is never held."""
    line, pending = 1, b""
    with Path(path).open("rb") as handle:
        while True:
            block = handle.read(chunk)
            data = pending + block
            if not data:
                return
            used = _decoded_length(path, data, line, final=not block)
            line += data.count(b"\n", 0, used)
            pending = data[used:]
            if not block:
                return


def _decoded_length(path: Path, data: bytes, line: int, final: bool) -> int:
    """How many bytes of `data` decode as UTF-8 (a character cut at the end of a chunk waits for the next)."""
    try:
        used = codecs.utf_8_decode(data, "strict", final)[1]
    except UnicodeDecodeError as err:
        at = line + data.count(b"\n", 0, err.start)
        raise DataError(f"{path} line {at}: not UTF-8 text (byte 0x{data[err.start]:02x}: a binary file, or text in "
                        "another encoding?); save the file as UTF-8") from None
    nul = data.find(b"\0", 0, used)
    if nul >= 0:
        at = line + data.count(b"\n", 0, nul)
        raise DataError(f"{path} line {at}: a NUL byte (a binary file, not text)")
    return used


def read_text(path: Path) -> str:
    """A whole UTF-8 text file (a leading byte-order mark dropped), or DataError naming the line that is not text."""
    data = Path(path).read_bytes()
    _decoded_length(path, data, 1, final=True)
    return data.decode("utf-8-sig")


def parse_json(path: Path, text: str | None = None):
    """The JSON document in `path` (or `text`, read from it), or DataError naming the line and column."""
    try:
        return json.loads(read_text(path) if text is None else text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path} line {err.lineno} column {err.colno}: not valid JSON ({_reason(err)})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to read") from None


def require_columns(dataset: Dataset, columns: list[str], source: str, nested: tuple[str, ...] = ()) -> None:
    """The columns are there, and each holds one plain value per row (a string or a number, not an object or a
    list), except those named in `nested`; else DataError naming the first such row."""
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {dataset.column_names}. "
                        "Rename them or pass the column flags (for example --text_column).")
    for column in (c for c in columns if c not in nested):
        feature = dataset.features[column]
        if isinstance(feature, (dict, datasets.List, datasets.LargeList, datasets.Sequence, datasets.Json)):
            found = next(((i, v) for i, v in enumerate(dataset[column]) if isinstance(v, (dict, list))), None)
            if found is not None:
                raise DataError(f"{row_name(source, found[0])}: column {column!r} must hold one plain value (a "
                                f"string or a number), got {kind_of(found[1])}")


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


def read_label_names(path: Path) -> list[str] | None:
    """A labels.json beside the data ({"0": "negative", ...} or {"id2label": {...}}) gives label names."""
    if not path.is_file():
        return None
    mapping = parse_json(path)
    mapping = mapping.get("id2label", mapping) if isinstance(mapping, dict) else mapping
    try:
        if not isinstance(mapping, dict):
            raise TypeError(f"got {kind_of(mapping)}")
        ids = sorted(int(k) for k in mapping)
    except (ValueError, TypeError) as err:
        raise DataError(f"{path}: expected {{\"0\": \"name\", ...}} or {{\"id2label\": {{...}}}} "
                        f"({type(err).__name__}: {err})") from None
    if ids != list(range(len(ids))):
        raise DataError(f"{path}: label ids must be 0..N-1, got {ids}")
    names = {int(k): v for k, v in mapping.items()}
    bad = next((i for i in ids if not isinstance(names[i], (str, int)) or isinstance(names[i], bool)), None)
    if bad is not None:
        raise DataError(f"{path}: the name of label {bad} must be a string, got {kind_of(names[bad])}")
    return [str(names[i]) for i in ids]


# ---------------------------------------------------------------- paths inside the data folder
def outside_message(where: str, path: Path, base: Path) -> str:
    """One line, the same whether or not the path outside exists or can be read (no existence oracle)."""
    return (f"{where}: {path} is outside the data folder {base}; pass --allow_paths_outside_data "
            "to read files from elsewhere")


def inside_data_folder(path: Path, base: Path, allow: bool, where: str) -> Path:
    """`path` unless it leads (by ../, an absolute path or a symlink) out of `base`. Checked before the file
    is looked for, so the error says nothing about what exists outside."""
    if allow or path.resolve().is_relative_to(base.resolve()):
        return path
    raise DataError(outside_message(where, path, base))


def folder_files(folder: str | Path, allow_outside: bool, base: str | Path | None = None,
                 recursive: bool = True) -> list[Path]:
    """The files under `folder` (sorted per folder, links kept as given), for every reader that lists a data
    folder. A symbolic link, to a file or a folder, that resolves outside `base` (default: `folder` itself) is
    refused naming the link, unless `allow_outside`: checked before its target is looked at, so the line is the
    same whether the target exists, is missing or cannot be read. Links inside are followed, each real folder
    once (a link to a parent cannot loop); broken links and anything that is no file or folder are skipped."""
    folder = Path(folder)
    base = Path(base) if base is not None else folder
    root, seen, found = base.resolve(), set(), []

    def check(path: Path) -> None:
        if not allow_outside and not path.resolve().is_relative_to(root):
            raise DataError(f"{path}: a symbolic link that leads outside the data folder {base}; pass "
                            "--allow_paths_outside_data to read files from elsewhere")

    def visit(directory: Path) -> None:
        check(directory)
        if directory.resolve() in seen:
            return
        seen.add(directory.resolve())
        try:
            entries = sorted(directory.iterdir())
        except OSError as err:  # inside the data folder, so saying why reveals nothing from elsewhere
            raise DataError(f"{directory}: cannot list the folder ({err.strerror or err})") from None
        for entry in entries:
            if entry.is_symlink():
                check(entry)
            if entry.is_dir() and recursive:
                visit(entry)
            elif entry.is_file():
                found.append(entry)

    visit(folder)
    return found
