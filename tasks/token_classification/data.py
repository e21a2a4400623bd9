"""Reading CoNLL files, JSONL rows and hub splits into sentences of words and IOB2 tags, with scheme checks."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset

from shared.inputs.data import DataError, json_lines, kind_of, parse_json, read_label_names, read_text

JSON_SUFFIXES = (".json", ".jsonl")
PREFIXES = {"B", "I", "E", "S"}  # IOB1 and IOB2 use B and I; BIOES adds E (end) and S (single)


@dataclass
class Sentences:
    """One split as read: words, string tags, and where each sentence and each tag came from."""

    source: str
    tokens: list[list[str]] = field(default_factory=list)
    tags: list[list[str]] = field(default_factory=list)
    where: list[list[str]] = field(default_factory=list)  # per tag: "file line N" (JSONL: the row's line)

    def add(self, tokens: list[str], tags: list[str], where: list[str]) -> None:
        self.tokens.append(tokens)
        self.tags.append(tags)
        self.where.append(where)


def read_conll(path: Path) -> Sentences:
    """Token first, tag last, tab- or space-separated; blank lines end sentences; -DOCSTART- lines are skipped."""
    out, tokens, tags, where = Sentences(str(path)), [], [], []
    for number, line in enumerate(io.StringIO(read_text(path), newline=None), start=1):  # lines as open() reads
        parts = line.rstrip("\n").split("\t") if "\t" in line else line.split()
        if not line.strip():
            if tokens:
                out.add(tokens, tags, where)
            tokens, tags, where = [], [], []
            continue
        if parts[0] == "-DOCSTART-":
            continue
        if len(parts) < 2 or not parts[-1].strip():
            raise DataError(f"{path} line {number}: no tag (expected 'token<TAB>tag', got {line.strip()!r})")
        tokens.append(parts[0].strip())
        tags.append(parts[-1].strip())
        where.append(f"{path} line {number}")
    if tokens:
        out.add(tokens, tags, where)
    if not out.tokens:
        raise DataError(f"{path}: empty file (no sentences)")
    return out


def read_json_rows(path: Path, tokens_column: str, tags_column: str | None) -> Sentences:
    """JSONL (or a JSON list) of {"tokens": [...], "tags": [...]}; integer tags take names from labels.json."""
    text = read_text(path)
    if not text.strip():
        raise DataError(f"{path}: empty file (no sentences)")
    rows = _json_rows(path, text)
    names = read_label_names(path.parent / "labels.json")
    out = Sentences(str(path))
    for number, row in rows:
        place = f"{path} line {number}" if path.suffix.lower() == ".jsonl" else f"{path} record {number - 1}"
        column = tags_column or next((c for c in ("tags", "ner_tags") if c in row), "tags")
        if tokens_column not in row or column not in row:
            raise DataError(f"{place}: missing {tokens_column!r} or {column!r}; found {sorted(row)} "
                            "(pass --tokens_column / --tags_column)")
        tokens, tags = row[tokens_column], row[column]
        if not isinstance(tokens, list) or not isinstance(tags, list):
            raise DataError(f"{place}: {tokens_column!r} and {column!r} must be lists, got "
                            f"{kind_of(tokens)} and {kind_of(tags)}")
        _check_words(tokens, tokens_column, place)
        if len(tokens) != len(tags):
            raise DataError(f"{place}: {len(tokens)} tokens but {len(tags)} tags")
        if not tokens:
            raise DataError(f"{place}: empty sentence (no tokens)")
        out.add([str(t) for t in tokens], [_tag_name(t, names, place) for t in tags], [place] * len(tags))
    return out


def _json_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    """(line or record number, row) pairs from JSON lines or one JSON list."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows = list(enumerate(parse_json(path, text), start=1))
        bad = next((number for number, row in rows if not isinstance(row, dict)), None)
        if bad is not None:
            raise DataError(f"{path} record {bad - 1}: expected an object with tokens and tags, got "
                            f"{kind_of(rows[bad - 1][1])}")
        return rows
    return list(json_lines(path, io.StringIO(text, newline=None)))


def _check_words(tokens: list, column: str, place: str) -> None:
    """Words are strings (numbers are taken as their text); an object or a list would become its repr."""
    bad = next((t for t in tokens if isinstance(t, (dict, list, bool)) or t is None), False)
    if bad is not False:
        raise DataError(f"{place}: every item of {column!r} must be a word (a string), got {kind_of(bad)}")


def _tag_name(tag, names: list[str] | None, place: str) -> str:
    if isinstance(tag, bool) or not isinstance(tag, (int, str)):
        raise DataError(f"{place}: tag {tag!r} is neither a string nor an integer")
    if isinstance(tag, int):
        if names is None:
            raise DataError(f"{place}: integer tag {tag} but no labels.json beside the file names the ids")
        if not 0 <= tag < len(names):
            raise DataError(f"{place}: tag id {tag} is outside labels.json ({len(names)} names)")
        return names[tag]
    return tag


def from_hub(dataset: Dataset, source: str, tokens_column: str, tags_column: str | None) -> Sentences:
    """A hub split in the conll2003 / wikiann layout: tokens plus ner_tags as Sequence(ClassLabel)."""
    column = tags_column or next((c for c in ("ner_tags", "tags") if c in dataset.column_names), "ner_tags")
    missing = [c for c in (tokens_column, column) if c not in dataset.column_names]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {dataset.column_names} "
                        "(pass --tokens_column / --tags_column)")
    feature = getattr(dataset.features[column], "feature", None)
    names = feature.names if isinstance(feature, ClassLabel) else None
    out = Sentences(source)
    for index, (tokens, tags) in enumerate(zip(dataset[tokens_column], dataset[column])):
        place = f"{source} row {index}"
        if len(tokens) != len(tags):
            raise DataError(f"{place}: {len(tokens)} tokens but {len(tags)} tags")
        if tokens:  # hub sets carry a few empty rows; they hold no word to score
            out.add(list(tokens), [_tag_name(t, names, place) for t in tags], [place] * len(tags))
    return out


def read_file(path: str, tokens_column: str, tags_column: str | None) -> Sentences:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such file")
    if file.suffix.lower() in JSON_SUFFIXES:
        return read_json_rows(file, tokens_column, tags_column)
    return read_conll(file)


# ------------------------------------------------------------------ tag schemes
def split_tag(tag: str, where: str) -> tuple[str, str | None]:
    """("O", None) or (prefix, type); a tag that fits no scheme is refused where it occurs."""
    if tag == "O":
        return "O", None
    prefix, dash, kind = tag.partition("-")
    if not dash or prefix not in PREFIXES or not kind:
        raise DataError(f"{where}: tag {tag!r} fits no tag scheme (expected O, or B-, I-, E- or S- then a type, "
                        "as in IOB1, IOB2 or BIOES)")
    return prefix, kind


def detect_scheme(split: Sentences) -> str:
    """BIOES if E- or S- occur; IOB1 if B- only ever separates two entities of one type; else IOB2."""
    prefixes, b_opens = set(), False
    for tags, where in zip(split.tags, split.where):
        previous = None
        for tag, place in zip(tags, where):
            prefix, kind = split_tag(tag, place)
            prefixes.add(prefix)
            if prefix == "B" and previous != kind:
                b_opens = True
            previous = kind
    if prefixes & {"E", "S"}:
        return "BIOES"
    return "IOB2" if b_opens or "I" not in prefixes else "IOB1"


def to_iob2(tags: list[str], where: list[str], scheme: str) -> tuple[list[str], int]:
    """The tags in IOB2 and how many stray I-X (after O or another type) were repaired to B-X.

    IOB1's I-X that opens an entity is its rule, not an error, so it is converted without counting;
    BIOES maps S to B and E to I.
    """
    out, repaired, previous = [], 0, None
    for tag, place in zip(tags, where):
        prefix, kind = split_tag(tag, place)
        if prefix == "O":
            out.append("O")
        elif prefix in ("B", "S"):
            out.append(f"B-{kind}")
        elif previous == kind:  # I or E continuing the entity
            out.append(f"I-{kind}")
        else:
            out.append(f"B-{kind}")
            repaired += scheme != "IOB1"
        previous = kind
    return out, repaired


def label_vocabulary(kinds: set[str]) -> list[str]:
    """O, then B- and I- of each entity type in sorted order (both, so a one-word-only type can still grow)."""
    return ["O"] + [f"{p}-{k}" for k in sorted(kinds) for p in ("B", "I")]


def to_dataset(split: Sentences, scheme: str, names: list[str] | None) -> tuple[Dataset, int, set[str]]:
    """(dataset of tokens + IOB2 tag ids, stray tags repaired, entity types seen). With `names` (the training
    vocabulary), a type never seen in training is refused where it occurs."""
    converted, repaired, kinds = [], [], set()
    for tags, where in zip(split.tags, split.where):
        iob2, count = to_iob2(tags, where, scheme)
        for tag, place in zip(iob2, where):
            if names is not None and tag not in names:
                raise DataError(f"{place}: tag {tag!r} never occurs in training (training tags: {names})")
            if tag != "O":
                kinds.add(tag[2:])
        converted.append(iob2)
        repaired.append(count)
    vocabulary = names or label_vocabulary(kinds)
    index = {name: i for i, name in enumerate(vocabulary)}
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "label": datasets.Sequence(ClassLabel(names=vocabulary)),
                                  "repaired_tags": datasets.Value("int32")})
    dataset = Dataset.from_dict({"tokens": split.tokens, "label": [[index[t] for t in tags] for tags in converted],
                                 "repaired_tags": repaired}, features=features)
    return dataset, sum(repaired), kinds


def read_words(path: str, tokens_column: str) -> list[list[str]] | None:
    """The sentences of an untagged file (CoNLL with one column, or JSONL with tokens only); None if it has tags."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such file")
    if file.suffix.lower() in JSON_SUFFIXES:
        rows = _json_rows(file, read_text(file))
        if not rows or any(c in rows[0][1] for c in ("tags", "ner_tags")):
            return None
        missing = next((n for n, row in rows if not isinstance(row.get(tokens_column), list)), None)
        if missing is not None:
            raise DataError(f"{file} line {missing}: no {tokens_column!r} list")
        for number, row in rows:
            _check_words(row[tokens_column], tokens_column, f"{file} line {number}")
        return [[str(t) for t in row[tokens_column]] for _, row in rows]
    sentences, words = [], []
    for line in [*io.StringIO(read_text(file), newline=None), ""]:
        parts = line.split("\t") if "\t" in line else line.split()
        if parts and parts[0] == "-DOCSTART-":
            continue
        if len(parts) > 1:
            return None
        if parts:
            words.append(parts[0].strip())
        elif words:
            sentences.append(words)
            words = []
    return sentences
