"""Reading translation pairs from JSONL ({"translation": {src: ..., tgt: ...}}), two-column TSV or hub splits."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from datasets import Dataset

from shared.inputs.data import DataError, kind_of, load_table, read_text, row_name


def read_tsv(path: Path, source_lang: str | None, target_lang: str | None) -> tuple[list[tuple], list[str]]:
    """Two tab-separated columns, source then target; a first line naming the two languages is a header."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    try:
        lines = list(reader)
    except csv.Error as err:  # a field past csv's size limit (131072 characters)
        raise DataError(f"{path} line {reader.line_num}: {err}") from None
    start = 1 if lines and [c.strip() for c in lines[0]] == [source_lang, target_lang] else 0
    pairs, where = [], []
    for number, cells in enumerate(lines[start:], start=start + 1):
        if not cells:
            continue  # blank line
        if len(cells) != 2:
            raise DataError(f"{path} line {number}: expected 2 tab-separated columns (source, target), got {len(cells)}")
        pairs.append((cells[0], cells[1]))
        where.append(f"{path} line {number}")
    return pairs, where


def read_translation_rows(dataset: Dataset, source: str, source_lang: str | None,
                          target_lang: str | None) -> tuple[list[tuple], list[str]]:
    """Pairs from rows holding a "translation" dict (or flat columns named by the two languages)."""
    nested = "translation" in dataset.column_names
    if not nested and not {source_lang, target_lang} <= set(dataset.column_names):
        raise DataError(f"{source}: expected a 'translation' column (or columns {source_lang!r} and "
                        f"{target_lang!r}); found {dataset.column_names}")
    if not source_lang or not target_lang:
        found = sorted((dataset[0]["translation"] or {}).keys()) if nested and len(dataset) else dataset.column_names
        raise DataError(f"{source}: give --source_lang and --target_lang; the first row has {found}")
    pairs, where = [], []
    for index, row in enumerate(dataset):
        pair = row["translation"] if nested else row
        if not isinstance(pair, dict):
            raise DataError(f"{row_name(source, index)}: 'translation' must be an object {{language: text}}, got "
                            f"{kind_of(pair)}")
        for lang in (source_lang, target_lang):
            if lang not in pair or pair[lang] is None:
                raise DataError(f"{row_name(source, index)}: no {lang!r} text; found {sorted(pair)}")
        pairs.append((pair[source_lang], pair[target_lang]))
        where.append(row_name(source, index))
    return pairs, where


def validated(pairs: list[tuple], where: list[str]) -> Dataset:
    """A Dataset of source/target strings; an empty side is refused with its row."""
    for (source, target), location in zip(pairs, where):
        for side, text in (("source", source), ("target", target)):
            if not isinstance(text, str):
                raise DataError(f"{location}: the {side} text must be a string, got {kind_of(text)}")
            if not text.strip():
                raise DataError(f"{location}: empty {side} text")
    if not pairs:
        raise DataError(f"{where[0] if where else 'data'}: no sentence pairs")
    return Dataset.from_dict({"source": [s.strip() for s, _ in pairs], "target": [t.strip() for _, t in pairs]})


def load_split(path: str, source_lang: str | None, target_lang: str | None) -> Dataset:
    file = Path(path)
    if file.suffix.lower() == ".tsv":
        if not file.is_file():
            raise DataError(f"{file}: no such file")
        return validated(*read_tsv(file, source_lang, target_lang))
    return validated(*read_translation_rows(load_table(file), str(file), source_lang, target_lang))


def from_hub_split(dataset: Dataset, source: str, source_lang: str | None, target_lang: str | None) -> Dataset:
    return validated(*read_translation_rows(dataset, source, source_lang, target_lang))
