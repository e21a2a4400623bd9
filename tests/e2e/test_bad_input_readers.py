"""Every text reader of every task, fed what a new user's files hold: bytes that are not UTF-8, a binary file
with a text suffix, JSON cut off or garbled, and rows of the wrong type or shape (a number where a list belongs,
an object where a string belongs). Each ends, through the real CLI and before any training step, in one
`error: ` line naming the file, the row or line, and the reason (tests/e2e/refusals.py), never a traceback and
never a run on nonsense.

Readers: tables (CSV, TSV, JSON, JSONL: shared.inputs.data.load_table, used by text classification, image
tables, QA rows and translation rows), labels.json (shared.inputs.data.read_label_names), SQuAD JSON, translation
TSV, CoNLL and token JSON(L). Images, masks, COCO JSON and data folders: tests/e2e/test_bad_input_paths.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.refusals import PNG, Case, assert_refused, write
from tests.helpers import toy_reviews, write_csv

LINES = [{"text": text, "label": label} for text, label in toy_reviews(8, 1)]


def _jsonl(rows: list) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


# ------------------------------------------------------------------ tables (text classification)
def _text(tmp: Path, fx: dict, name: str, content: str | bytes, labels: str | bytes | None = None) -> list[str]:
    train = write(tmp / "data" / name, content)
    if labels is not None:
        write(tmp / "data" / "labels.json", labels)
    validation = write_csv(tmp / "validation.csv", toy_reviews(4, 2))
    return ["--model_name_or_path", str(fx["bert"]), "--train_file", str(train), "--validation_file", str(validation)]


def _csv_bytes(middle: bytes) -> bytes:
    return b"text,label\nthe lamp is great,pos\n" + middle + b"\nthe tent is awful,neg\n"


INT_LABELS = _jsonl([{"text": row["text"], "label": i % 2} for i, row in enumerate(LINES)])
TABLES = [
    Case("csv-not-utf8", "text_classification", lambda t, fx: _text(t, fx, "train.csv", _csv_bytes(b"caf\xe9 ok,pos")),
         r"train\.csv line 3: not UTF-8 text \(byte 0xe9"),
    Case("csv-binary-file", "text_classification", lambda t, fx: _text(t, fx, "train.csv", PNG * 4),
         r"train\.csv line 1: not UTF-8 text \(byte 0x89: a binary file", subprocess=True),
    Case("tsv-nul-byte", "text_classification",
         lambda t, fx: _text(t, fx, "train.tsv", b"text\tlabel\nthe lamp\x00 is great\tpos\nbad\tneg\n"),
         r"train\.tsv line 2: a NUL byte \(a binary file, not text\)"),
    Case("csv-wrong-field-count", "text_classification",
         lambda t, fx: _text(t, fx, "train.csv", _csv_bytes(b"the lamp, is fine,pos")),
         r"train\.csv: could not be parsed as CSV \(ParserError: .*Expected 2 fields in line 3, saw 3"),
    Case("csv-empty", "text_classification", lambda t, fx: _text(t, fx, "train.csv", ""),
         r"train\.csv: could not be parsed as CSV \(the file holds no rows\)"),
    Case("jsonl-cut-off", "text_classification",
         lambda t, fx: _text(t, fx, "train.jsonl", _jsonl(LINES)[:-12]),
         r"train\.jsonl line 8: not valid JSON \(Unterminated string"),
    Case("jsonl-line-not-an-object", "text_classification",
         lambda t, fx: _text(t, fx, "train.jsonl", _jsonl(LINES[:2] + [[1, 2]] + LINES[2:])),
         r"train\.jsonl line 3: expected one JSON object per line, got a list"),
    Case("jsonl-first-line-a-number", "text_classification", lambda t, fx: _text(t, fx, "train.jsonl", "5\n6\n"),
         r"train\.jsonl line 1: expected one JSON object per line, got a number \(5\)"),
    Case("json-cut-off", "text_classification", lambda t, fx: _text(t, fx, "train.json", json.dumps(LINES)[:-30]),
         r"train\.json line 1 column \d+: not valid JSON"),
    Case("json-rows-not-objects", "text_classification", lambda t, fx: _text(t, fx, "train.json", "[1, 2, 3]"),
         r"train\.json record 0: expected a row \(a JSON object\), got a number \(1\)"),
    Case("json-a-string", "text_classification", lambda t, fx: _text(t, fx, "train.json", '"rows"'),
         r"train\.json: expected a list of rows \(JSON objects\), got a string"),
    Case("jsonl-object-among-strings", "text_classification",
         lambda t, fx: _text(t, fx, "train.jsonl", _jsonl(LINES[:4] + [{"text": {"en": "x"}, "label": "pos"}])),
         r"train\.jsonl line 5: column 'text' holds an object here but a string in line 1; every row must give it "),
    Case("jsonl-number-among-strings", "text_classification",
         lambda t, fx: _text(t, fx, "train.jsonl", _jsonl(LINES[:3] + [{"text": 7, "label": "pos"}])),
         r"train\.jsonl line 4: column 'text' holds a number \(7\) here but a string in line 1"),
    Case("jsonl-every-text-an-object", "text_classification",
         lambda t, fx: _text(t, fx, "train.jsonl", _jsonl([{"text": {"en": r["text"]}, "label": r["label"]}
                                                           for r in LINES])),
         r"train\.jsonl line 1: column 'text' must hold one plain value \(a string or a number\), got an object"),
    Case("jsonl-label-lists", "text_classification",
         lambda t, fx: _text(t, fx, "train.jsonl", _jsonl([{**r, "label": [r["label"]]} for r in LINES])),
         r"train\.jsonl line 1: column 'label' must hold one plain value .*got a list"),
    Case("csv-text-column-all-numbers", "text_classification",
         lambda t, fx: _text(t, fx, "train.csv", "text,label\n12,pos\n7,neg\n3,pos\n"),
         r"train\.csv: column 'text' is not text: every row was read as a number \(int64\); point --text_column at "
         r"the column that holds the text", subprocess=True),
    Case("jsonl-every-text-a-number", "text_classification",
         lambda t, fx: _text(t, fx, "train.jsonl", _jsonl([{"text": i + 0.5, "label": r["label"]}
                                                           for i, r in enumerate(LINES)])),
         r"train\.jsonl: column 'text' is not text: every row was read as a number \(float64\)"),
    Case("csv-text-column-true-false", "text_classification",
         lambda t, fx: _text(t, fx, "train.csv", "text,label\ntrue,pos\nfalse,neg\n"),
         r"train\.csv: column 'text' is not text: every row was read as true/false \(bool\)"),
    Case("csv-text-pair-all-numbers", "text_classification",
         lambda t, fx: _text(t, fx, "train.csv", "text,text_pair,label\nthe lamp,4,pos\nthe tent,5,neg\n")
         + ["--text_pair_column", "text_pair"],
         r"train\.csv: column 'text_pair' is not text: every row was read as a number \(int64\); point "
         r"--text_pair_column at"),
    Case("labels-json-not-utf8", "text_classification",
         lambda t, fx: _text(t, fx, "train.jsonl", INT_LABELS, b'{"0": "n\xe9g", "1": "pos"}'),
         r"data/labels\.json line 1: not UTF-8 text \(byte 0xe9"),
    Case("labels-json-cut-off", "text_classification",
         lambda t, fx: _text(t, fx, "train.jsonl", INT_LABELS, '{"0": "neg",\n "1": '),
         r"data/labels\.json line 2 column 7: not valid JSON \(Expecting value\)"),
    Case("labels-json-name-an-object", "text_classification",
         lambda t, fx: _text(t, fx, "train.jsonl", INT_LABELS, '{"0": {"name": "neg"}, "1": "pos"}'),
         r"data/labels\.json: the name of label 0 must be a string, got an object"),
    Case("labels-json-a-list", "text_classification",
         lambda t, fx: _text(t, fx, "train.jsonl", INT_LABELS, '["neg", "pos"]'),
         r"data/labels\.json: expected \{\"0\": \"name\", \.\.\.\} .*got a list"),
]


# ------------------------------------------------------------------ question answering
def _qa_rows() -> list[dict]:
    context = "The capital of Kalo is Mirta."
    return [{"id": f"q{i}", "question": "What is the capital of Kalo?", "context": context,
             "answers": {"text": ["Mirta"], "answer_start": [context.index("Mirta")]}} for i in range(4)]


def _squad(question: dict | None = None, paragraph: dict | None = None, article: dict | None = None) -> str:
    qa = {"id": "q0", "question": "What is the capital of Kalo?",
          "answers": [{"text": "Mirta", "answer_start": 22}], **(question or {})}
    para = {"context": "The capital of Kalo is Mirta.", "qas": [qa], **(paragraph or {})}
    return json.dumps({"version": "1.1", "data": [{"title": "Kalo", "paragraphs": [para], **(article or {})}]})


def _qa(tmp: Path, fx: dict, name: str, content: str | bytes) -> list[str]:
    validation = write(tmp / "validation.jsonl", _jsonl(_qa_rows()))
    return ["--model_name_or_path", str(fx["bert"]), "--train_file", str(write(tmp / name, content)),
            "--validation_file", str(validation)]


def _qa_changed(index: int, **values) -> str:
    rows = _qa_rows()
    rows[index].update(values)
    return _jsonl(rows)


QA = [
    Case("squad-not-utf8", "question_answering",
         lambda t, fx: _qa(t, fx, "train.json", b'{"data": [{"title": "K\xe5lo", "paragraphs": []}]}'),
         r"train\.json line 1: not UTF-8 text \(byte 0xe5"),
    Case("squad-binary-file", "question_answering", lambda t, fx: _qa(t, fx, "train.json", PNG),
         r"train\.json line 1: not UTF-8 text \(byte 0x89"),
    Case("squad-cut-off", "question_answering", lambda t, fx: _qa(t, fx, "train.json", _squad()[:-40]),
         r"train\.json line 1 column \d+: not valid JSON"),
    Case("squad-paragraphs-a-number", "question_answering",
         lambda t, fx: _qa(t, fx, "train.json", _squad(article={"paragraphs": 5})),
         r"train\.json article 0: 'paragraphs' must be a list of objects, got a number \(5\)"),
    Case("squad-qas-strings", "question_answering",
         lambda t, fx: _qa(t, fx, "train.json", _squad(paragraph={"qas": ["what?"]})),
         r"train\.json article 0 paragraph 0: 'qas' must be a list of objects, got a string in it"),
    Case("squad-answers-a-string", "question_answering",
         lambda t, fx: _qa(t, fx, "train.json", _squad(question={"answers": "Mirta"})),
         r"train\.json article 0 paragraph 0 question 0: 'answers' must be a list of objects, got a string"),
    Case("squad-context-an-object", "question_answering",
         lambda t, fx: _qa(t, fx, "train.json", _squad(paragraph={"context": {"en": "Mirta"}})),
         r"train\.json article 0 paragraph 0 question 0 \(id q0\): the context must be a string, got an object"),
    Case("squad-id-a-list", "question_answering",
         lambda t, fx: _qa(t, fx, "train.json", _squad(question={"id": ["q0"]})),
         r"train\.json article 0 paragraph 0 question 0: 'id' must be a string or a number, got a list"),
    Case("qa-jsonl-cut-off", "question_answering", lambda t, fx: _qa(t, fx, "train.jsonl", _jsonl(_qa_rows())[:-9]),
         r"train\.jsonl line 4: not valid JSON"),
    Case("qa-answers-a-string-in-one-row", "question_answering",
         lambda t, fx: _qa(t, fx, "train.jsonl", _qa_changed(2, answers="Mirta")),
         r"train\.jsonl line 3: column 'answers' holds a string here but an object in line 1"),
    Case("qa-every-answers-a-number", "question_answering",
         lambda t, fx: _qa(t, fx, "train.jsonl", _jsonl([{**r, "answers": 22} for r in _qa_rows()])),
         r"train\.jsonl line 1: 'answers' must be \{\"text\": \[\.\.\.\], \"answer_start\": \[\.\.\.\]\} or a list"),
    Case("qa-every-question-a-list", "question_answering",
         lambda t, fx: _qa(t, fx, "train.jsonl", _jsonl([{**r, "question": [r["question"]]} for r in _qa_rows()])),
         r"train\.jsonl line 1: the question must be a string, got a list$"),
    Case("qa-answer-text-a-number", "question_answering",
         lambda t, fx: _qa(t, fx, "train.jsonl", _qa_changed(1, answers={"text": [5], "answer_start": [22]})),
         r"train\.jsonl line 2: an answer text must be a string, got a number \(5\)"),
    Case("qa-title-an-object", "question_answering",
         lambda t, fx: _qa(t, fx, "train.jsonl", _jsonl([{**r, "title": {"a": 1}} for r in _qa_rows()])),
         r"train\.jsonl line 1: 'title' must be a string, got an object"),
]


# ------------------------------------------------------------------ translation
def _pairs(n: int = 4) -> list[dict]:
    return [{"translation": {"de": f"das haus {i}", "en": f"the house {i}"}} for i in range(n)]


def _mt(tmp: Path, name: str, content: str | bytes) -> list[str]:
    validation = write(tmp / "validation.jsonl", _jsonl(_pairs(2)))
    return ["--train_file", str(write(tmp / name, content)), "--validation_file", str(validation),
            "--source_lang", "de", "--target_lang", "en"]


TRANSLATION = [
    Case("tsv-not-utf8", "translation", lambda t, fx: _mt(t, "train.tsv", b"das haus\tthe house\nstra\xdfe\tstreet\n"),
         r"train\.tsv line 2: not UTF-8 text \(byte 0xdf", subprocess=True),
    Case("tsv-binary-file", "translation", lambda t, fx: _mt(t, "train.tsv", b"das\tthe\n\x00\x01\x02\tx\n"),
         r"train\.tsv line 2: a NUL byte"),
    Case("tsv-field-too-long", "translation",
         lambda t, fx: _mt(t, "train.tsv", "das haus\tthe house\n" + "wort " * 30000 + "\tword\n"),
         r"train\.tsv line 2: field larger than field limit"),
    Case("mt-jsonl-cut-off", "translation", lambda t, fx: _mt(t, "train.jsonl", _jsonl(_pairs())[:-5]),
         r"train\.jsonl line 4: not valid JSON"),
    Case("mt-translation-a-string", "translation",
         lambda t, fx: _mt(t, "train.jsonl", _jsonl([{"translation": f"das haus {i}"} for i in range(3)])),
         r"train\.jsonl line 1: 'translation' must be an object \{language: text\}, got a string"),
    Case("mt-text-a-list", "translation",
         lambda t, fx: _mt(t, "train.jsonl", _jsonl(_pairs(2) + [{"translation": {"de": ["das"], "en": "the"}}])),
         r"train\.jsonl line 3: the source text must be a string, got a list"),
    Case("mt-translation-a-string-in-one-row", "translation",
         lambda t, fx: _mt(t, "train.jsonl", _jsonl(_pairs(2) + [{"translation": "das haus"}])),
         r"train\.jsonl line 3: column 'translation' holds a string here but an object in line 1"),
]


# ------------------------------------------------------------------ token classification
def _tokens(tmp: Path, fx: dict, name: str, content: str | bytes, labels: str | None = None) -> list[str]:
    if labels is not None:
        write(tmp / "labels.json", labels)
    validation = write(tmp / "validation.conll", "Bob\tB-PER\nsings\tO\n")
    return ["--model_name_or_path", str(fx["bert"]), "--train_file", str(write(tmp / name, content)),
            "--validation_file", str(validation)]


SENTENCE = {"tokens": ["Ann", "sings"], "tags": ["B-PER", "O"]}
TOKENS = [
    Case("conll-not-utf8", "token_classification",
         lambda t, fx: _tokens(t, fx, "train.conll", b"Ann\tB-PER\nZ\xfcrich\tB-LOC\n"),
         r"train\.conll line 2: not UTF-8 text \(byte 0xfc", subprocess=True),
    Case("conll-binary-file", "token_classification", lambda t, fx: _tokens(t, fx, "train.conll", PNG),
         r"train\.conll line 1: not UTF-8 text \(byte 0x89"),
    Case("token-jsonl-cut-off", "token_classification",
         lambda t, fx: _tokens(t, fx, "train.jsonl", _jsonl([SENTENCE] * 3)[:-6]),
         r"train\.jsonl line 3: not valid JSON"),
    Case("token-json-cut-off", "token_classification",
         lambda t, fx: _tokens(t, fx, "train.json", json.dumps([SENTENCE] * 3)[:-6]),
         r"train\.json line 1 column \d+: not valid JSON"),
    Case("token-json-rows-not-objects", "token_classification",
         lambda t, fx: _tokens(t, fx, "train.json", json.dumps([SENTENCE, ["Ann", "B-PER"]])),
         r"train\.json record 1: expected an object with tokens and tags, got a list"),
    Case("token-tokens-a-number", "token_classification",
         lambda t, fx: _tokens(t, fx, "train.jsonl", _jsonl([SENTENCE, {"tokens": 5, "tags": ["O"]}])),
         r"train\.jsonl line 2: 'tokens' and 'tags' must be lists, got a number \(5\) and a list"),
    Case("token-word-an-object", "token_classification",
         lambda t, fx: _tokens(t, fx, "train.jsonl", _jsonl([SENTENCE, {"tokens": [{"w": "Ann"}], "tags": ["O"]}])),
         r"train\.jsonl line 2: every item of 'tokens' must be a word \(a string\), got an object"),
    Case("token-labels-json-cut-off", "token_classification",
         lambda t, fx: _tokens(t, fx, "train.jsonl", _jsonl([{"tokens": ["Ann"], "tags": [1]}]), '{"0": "O", '),
         r"labels\.json line 1 column 12: not valid JSON"),
]

CASES = TABLES + QA + TRANSLATION + TOKENS


@pytest.fixture(scope="module")
def fx(tiny_bert_dir) -> dict:
    return {"bert": tiny_bert_dir}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_reader_refuses_a_bad_file_naming_file_row_and_reason(case, fx, tmp_path, capsys):
    assert_refused(case, fx, tmp_path, capsys)


def test_every_text_reader_has_cases():
    tasks = {case.task for case in CASES}
    assert tasks == {"text_classification", "question_answering", "translation", "token_classification"}
    assert len({case.id for case in CASES}) == len(CASES)
