"""Reading SQuAD v1.1/v2.0 JSON, JSONL rows or hub splits into flat, validated question rows."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
from datasets import Dataset

from shared.inputs.data import DataError, kind_of, load_table, parse_json, row_name

FEATURES = datasets.Features({
    "id": datasets.Value("string"), "title": datasets.Value("string"), "context": datasets.Value("string"),
    "question": datasets.Value("string"),
    "answers": {"text": datasets.Sequence(datasets.Value("string")),
                "answer_start": datasets.Sequence(datasets.Value("int32"))},
})


def is_squad_json(path: Path) -> bool:
    """True for the nested SQuAD layout: {"data": [{"paragraphs": [{"context", "qas"}]}]}."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        top = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return False  # JSON lines in a .json file, or no JSON at all: load_table names the line
    return isinstance(top, dict) and isinstance(top.get("data"), list) and all(
        isinstance(a, dict) and "paragraphs" in a for a in top["data"])


def read_squad_json(path: Path) -> tuple[list[dict], list[str]]:
    """Flat rows and, for each, a human location ("file article 3 paragraph 1 question 2")."""
    rows, where = [], []
    for a, article in enumerate(parse_json(path)["data"]):
        for p, paragraph in enumerate(_list_of_objects(article, "paragraphs", f"{path} article {a}")):
            place = f"{path} article {a} paragraph {p}"
            for q, qa in enumerate(_list_of_objects(paragraph, "qas", place)):
                answers = [] if qa.get("is_impossible") else _list_of_objects(qa, "answers", f"{place} question {q}")
                rows.append({"id": _id(qa.get("id", f"{a}-{p}-{q}"), f"{place} question {q}"),
                             "title": article.get("title", ""), "context": paragraph.get("context"),
                             "question": qa.get("question"),
                             "answers": {"text": [x.get("text") for x in answers],
                                         "answer_start": [x.get("answer_start") for x in answers]}})
                where.append(f"{place} question {q} (id {rows[-1]['id']})")
    return rows, where


def _list_of_objects(parent: dict, key: str, where: str) -> list[dict]:
    """parent[key] as a list of JSON objects (missing: empty), or DataError naming where it is."""
    items = parent.get(key, [])
    if not isinstance(items, list) or any(not isinstance(item, dict) for item in items):
        bad = items if not isinstance(items, list) else next(i for i in items if not isinstance(i, dict))
        raise DataError(f"{where}: {key!r} must be a list of objects, got {kind_of(bad)}"
                        + (" in it" if isinstance(items, list) else ""))
    return items


def _id(value, where: str) -> str:
    if isinstance(value, (dict, list)) or isinstance(value, bool):
        raise DataError(f"{where}: 'id' must be a string or a number, got {kind_of(value)}")
    return str(value)


def read_rows(dataset: Dataset, source: str) -> tuple[list[dict], list[str]]:
    """Rows of a JSONL file or hub split, answers as {"text": [...], "answer_start": [...]}."""
    missing = [c for c in ("question", "context", "answers") if c not in dataset.column_names]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {dataset.column_names}")
    rows, where = [], []
    for index, row in enumerate(dataset):
        place = row_name(source, index)
        answers = _answers(row["answers"], place)
        title = row.get("title") or ""
        if not isinstance(title, str):
            raise DataError(f"{place}: 'title' must be a string, got {kind_of(title)}")
        rows.append({"id": _id(row.get("id") if row.get("id") is not None else index, place), "title": title,
                     "context": row["context"], "question": row["question"], "answers": answers})
        where.append(place)
    return rows, where


def _answers(answers, where: str) -> dict:
    """{"text": [...], "answer_start": [...]} from that layout (scalars taken as one answer) or a list of
    {"text", "answer_start"} objects, as in SQuAD JSON; DataError naming the row for anything else."""
    if not answers:
        return {"text": [], "answer_start": []}
    if isinstance(answers, list) and all(isinstance(x, dict) for x in answers):
        return {"text": [x.get("text") for x in answers], "answer_start": [x.get("answer_start") for x in answers]}
    if not isinstance(answers, dict):
        raise DataError(f"{where}: 'answers' must be {{\"text\": [...], \"answer_start\": [...]}} or a list of "
                        f"such objects, got {kind_of(answers)}")
    texts, starts = answers.get("text", []), answers.get("answer_start", [])
    return {"text": texts if isinstance(texts, list) else [texts],
            "answer_start": starts if isinstance(starts, list) else [starts]}


def problem(row: dict, allow_unanswerable: bool) -> str | None:
    """What is wrong with one row, or None. Answer offsets are checked against the context text."""
    context, question = row["context"], row["question"]
    for name, value in (("question", question), ("context", context)):
        if value is not None and not isinstance(value, str):
            return f"the {name} must be a string, got {kind_of(value)}"
    if not isinstance(question, str) or not question.strip():
        return "empty question"
    if not isinstance(context, str) or not context.strip():
        return "empty context"
    texts, starts = row["answers"]["text"], row["answers"]["answer_start"]
    if len(texts) != len(starts):
        return f"{len(texts)} answer texts but {len(starts)} answer_start values"
    if not texts and not allow_unanswerable:
        return "no answer (pass --version_2_with_negative for unanswerable questions)"
    for text, start in zip(texts, starts):
        if text is not None and not isinstance(text, str):
            return f"an answer text must be a string, got {kind_of(text)}"
        if not text or not text.strip():
            return "empty answer text"
        if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start < len(context):
            return f"answer_start {start!r} is outside the context (length {len(context)})"
        if context[start:start + len(text)] != text:
            return (f"answer {text!r} is not at answer_start {start}: the context there reads "
                    f"{context[start:start + len(text)]!r}")
    return None


UNSKIPPABLE = ("empty question", "empty context", "duplicate", "the question", "the context")


def validated(rows: list[dict], where: list[str], allow_unanswerable: bool, skip_bad: bool,
              source: str) -> Dataset:
    """Refuse the first bad row (naming it), or with skip_bad drop bad rows and report how many."""
    kept, skipped, seen = [], [], {}
    for row, location in zip(rows, where):
        reason = problem(row, allow_unanswerable)
        if reason is None and row["id"] in seen:
            reason = f"duplicate id {row['id']!r} (also at {seen[row['id']]})"
        if reason is not None:
            fatal = reason.startswith(UNSKIPPABLE)  # --skip_bad_answers drops bad answers, not bad questions
            if fatal or not skip_bad:
                raise DataError(f"{location}: {reason}" + ("" if fatal or skip_bad else
                                                           "; fix it or pass --skip_bad_answers"))
            skipped.append(f"{location}: {reason}")
            continue
        seen[row["id"]] = location
        kept.append(row)
    if skipped:
        print(f"warning: skipped {len(skipped)} of {len(rows)} questions in {source} with bad answers "
              f"(--skip_bad_answers); first: {skipped[0]}")
    if not kept:
        raise DataError(f"{source}: no usable questions")
    return Dataset.from_list(kept, features=FEATURES)


def load_split(path: str, allow_unanswerable: bool, skip_bad: bool) -> Dataset:
    """One local file: nested SQuAD JSON, or JSON/JSONL rows."""
    file = Path(path)
    rows, where = read_squad_json(file) if is_squad_json(file) else read_rows(load_table(file), str(file))
    return validated(rows, where, allow_unanswerable, skip_bad, str(file))


def from_hub_split(dataset: Dataset, source: str, allow_unanswerable: bool, skip_bad: bool) -> Dataset:
    rows, where = read_rows(dataset, source)
    return validated(rows, where, allow_unanswerable, skip_bad, source)
