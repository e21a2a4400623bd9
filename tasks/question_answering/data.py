"""Reading SQuAD v1.1/v2.0 JSON, JSONL rows or hub splits into flat, validated question rows."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
from datasets import Dataset

from shared.inputs.data import DataError, load_table, row_name

FEATURES = datasets.Features({
    "id": datasets.Value("string"), "title": datasets.Value("string"), "context": datasets.Value("string"),
    "question": datasets.Value("string"),
    "answers": {"text": datasets.Sequence(datasets.Value("string")),
                "answer_start": datasets.Sequence(datasets.Value("int32"))},
})


def is_squad_json(path: Path) -> bool:
    """True for the nested SQuAD layout: {"data": [{"paragraphs": [{"context", "qas"}]}]}."""
    if path.suffix.lower() != ".json":
        return False
    try:
        top = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False  # JSON lines in a .json file
    return isinstance(top, dict) and isinstance(top.get("data"), list) and all(
        isinstance(a, dict) and "paragraphs" in a for a in top["data"])


def read_squad_json(path: Path) -> tuple[list[dict], list[str]]:
    """Flat rows and, for each, a human location ("file article 3 paragraph 1 question 2")."""
    rows, where = [], []
    for a, article in enumerate(json.loads(path.read_text())["data"]):
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            for q, qa in enumerate(paragraph.get("qas", [])):
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                rows.append({"id": str(qa.get("id", f"{a}-{p}-{q}")), "title": article.get("title", ""),
                             "context": paragraph.get("context"), "question": qa.get("question"),
                             "answers": {"text": [x.get("text") for x in answers],
                                         "answer_start": [x.get("answer_start") for x in answers]}})
                where.append(f"{path} article {a} paragraph {p} question {q} (id {rows[-1]['id']})")
    return rows, where


def read_rows(dataset: Dataset, source: str) -> tuple[list[dict], list[str]]:
    """Rows of a JSONL file or hub split, answers as {"text": [...], "answer_start": [...]}."""
    missing = [c for c in ("question", "context", "answers") if c not in dataset.column_names]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {dataset.column_names}")
    rows, where = [], []
    for index, row in enumerate(dataset):
        answers = row["answers"] or {"text": [], "answer_start": []}
        if isinstance(answers, list):  # a list of {"text", "answer_start"} objects, as in SQuAD JSON
            answers = {"text": [x.get("text") for x in answers], "answer_start": [x.get("answer_start") for x in answers]}
        texts, starts = answers.get("text", []), answers.get("answer_start", [])
        texts, starts = (texts if isinstance(texts, list) else [texts]), (starts if isinstance(starts, list) else [starts])
        rows.append({"id": str(row.get("id") if row.get("id") is not None else index), "title": row.get("title") or "",
                     "context": row["context"], "question": row["question"],
                     "answers": {"text": texts, "answer_start": starts}})
        where.append(row_name(source, index))
    return rows, where


def problem(row: dict, allow_unanswerable: bool) -> str | None:
    """What is wrong with one row, or None. Answer offsets are checked against the context text."""
    context, question = row["context"], row["question"]
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
        if not isinstance(text, str) or not text.strip():
            return "empty answer text"
        if not isinstance(start, int) or not 0 <= start < len(context):
            return f"answer_start {start!r} is outside the context (length {len(context)})"
        if context[start:start + len(text)] != text:
            return (f"answer {text!r} is not at answer_start {start}: the context there reads "
                    f"{context[start:start + len(text)]!r}")
    return None


def validated(rows: list[dict], where: list[str], allow_unanswerable: bool, skip_bad: bool,
              source: str) -> Dataset:
    """Refuse the first bad row (naming it), or with skip_bad drop bad rows and report how many."""
    kept, skipped, seen = [], [], {}
    for row, location in zip(rows, where):
        reason = problem(row, allow_unanswerable)
        if reason is None and row["id"] in seen:
            reason = f"duplicate id {row['id']!r} (also at {seen[row['id']]})"
        if reason is not None:
            if not skip_bad or reason.startswith(("empty question", "empty context", "duplicate")):
                raise DataError(f"{location}: {reason}" + ("" if skip_bad else "; fix it or pass --skip_bad_answers"))
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
