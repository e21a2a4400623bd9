"""Token classification: readers and tag schemes, bad input, alignment and windows, the metric."""
from __future__ import annotations

import json
import random

import pytest
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2

from shared.toolkit.cli import main
from shared.toolkit.config import parse_config
from shared.inputs.data import DataError
from shared.evaluation.scoring import load_metric
from shared.task import TaskData, get_task
from tasks.token_classification.alignment import encode_windows, entity_confusion, word_predictions

from tests.tasks.token_fixtures import tiny_tagger_dir, toy_sentences, write_conll  # noqa: F401 (a fixture)


def _cfg(*flags):
    return parse_config(get_task("token_classification").config_class, list(flags))


def _load(train, validation=None, *flags):
    extra = ["--validation_file", validation] if validation else []
    task = get_task("token_classification")(_cfg("--train_file", train, *extra, *flags))
    return task, task.load_data()


def _tags(dataset, row):
    names = dataset.features["label"].feature.names
    return [names[i] for i in dataset[row]["label"]]


# ------------------------------------------------------------------ readers and schemes
def test_conll_reads_tabs_spaces_docstart_and_extra_columns(tmp_path):
    (tmp_path / "t.conll").write_text("-DOCSTART- -X- O O\n\nAlice NNP B-PER\nSmith NNP I-PER\nran VB O\n\n\n"
                                      "Paris\tB-LOC\n")
    task, data = _load(str(tmp_path / "t.conll"), str(tmp_path / "t.conll"))
    assert data["train"]["tokens"] == [["Alice", "Smith", "ran"], ["Paris"]]
    assert _tags(data["train"], 0) == ["B-PER", "I-PER", "O"]
    assert data.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_jsonl_with_integer_tags_takes_names_from_labels_json(tmp_path):
    rows = [{"tokens": ["Bob", "in", "Paris"], "ner_tags": [1, 0, 3]}, {"tokens": ["Acme"], "ner_tags": [5]}]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    (tmp_path / "labels.json").write_text(json.dumps({str(i): name for i, name in enumerate(names)}))
    _, data = _load(str(tmp_path / "train.jsonl"), str(tmp_path / "train.jsonl"))
    assert _tags(data["train"], 0) == ["B-PER", "O", "B-LOC"] and _tags(data["train"], 1) == ["B-ORG"]


def test_hub_layout_with_classlabel_sequences():
    import datasets

    from tasks.token_classification.data import from_hub

    names = ["O", "B-PER", "I-PER"]
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    split = datasets.Dataset.from_dict({"tokens": [["Ann", "Lee", "sings"]], "ner_tags": [[1, 2, 0]]},
                                       features=features)
    assert from_hub(split, "hub[train]", "tokens", None).tags == [["B-PER", "I-PER", "O"]]


@pytest.mark.parametrize("tags, scheme, iob2, repaired", [
    (["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], "IOB1", ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"], 0),
    (["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"], "BIOES", ["B-PER", "O", "B-LOC", "I-LOC", "I-LOC"], 0),
    (["B-PER", "O", "I-PER", "I-LOC", "B-LOC"], "IOB2", ["B-PER", "O", "B-PER", "B-LOC", "B-LOC"], 2),
])
def test_schemes_are_detected_and_converted_to_iob2_with_strays_counted(tmp_path, capsys, tags, scheme, iob2,
                                                                          repaired):
    train = write_conll(tmp_path / "t.conll", [[(f"w{i}", t) for i, t in enumerate(tags)]])
    task, data = _load(train, train)
    assert _tags(data["train"], 0) == iob2
    out = capsys.readouterr().out
    assert f"tag scheme {scheme}" in out
    warnings = data.warnings
    assert bool(warnings) == bool(repaired)
    if repaired:
        assert f"train: {repaired} stray I- tags" in warnings[0] and "warning: stray I- tags" in out


@pytest.mark.parametrize("case, match", [
    ("no_tag", r"train\.conll line 3: no tag \(expected 'token<TAB>tag', got 'Smith'\)"),
    ("count_mismatch", r"train\.jsonl line 2: 3 tokens but 2 tags"),
    ("unseen_tag", r"validation\.conll line 2: tag 'B-MISC' never occurs in training"),
    ("empty_file", r"train\.conll: empty file \(no sentences\)"),
    ("no_scheme", r"train\.conll line 2: tag 'PERSON' fits no tag scheme"),
    ("integer_without_names", r"train\.jsonl line 1: integer tag 1 but no labels\.json"),
    ("missing_file", r"gone\.conll: no such file"),
])
def test_bad_input_is_refused_with_file_and_line(tmp_path, case, match):
    train = write_conll(tmp_path / "train.conll", [[("Alice", "B-PER"), ("Smith", "I-PER"), ("ran", "O")]])
    validation = write_conll(tmp_path / "validation.conll", [[("Bob", "B-PER")]])
    if case == "no_tag":
        (tmp_path / "train.conll").write_text("Alice\tB-PER\n\nSmith\nran\tO\n")
    elif case == "count_mismatch":
        train = str(tmp_path / "train.jsonl")
        (tmp_path / "train.jsonl").write_text('{"tokens": ["a"], "tags": ["O"]}\n'
                                              '{"tokens": ["a", "b", "c"], "tags": ["O", "O"]}\n')
    elif case == "unseen_tag":
        (tmp_path / "validation.conll").write_text("Bob\tB-PER\nThe\tB-MISC\n")
    elif case == "empty_file":
        (tmp_path / "train.conll").write_text("\n\n")
    elif case == "no_scheme":
        (tmp_path / "train.conll").write_text("a\tO\nAlice\tPERSON\n")
    elif case == "integer_without_names":
        train = str(tmp_path / "train.jsonl")
        (tmp_path / "train.jsonl").write_text('{"tokens": ["a"], "tags": [1]}\n')
    elif case == "missing_file":
        train = str(tmp_path / "gone.conll")
    with pytest.raises(DataError, match=match) as error:
        _load(train, validation)
    assert "\n" not in str(error.value)


def test_bad_input_exits_2_through_the_cli_with_one_line(tmp_path, capsys):
    (tmp_path / "train.conll").write_text("Alice\tB-PER\nSmith\n")
    with pytest.raises(SystemExit) as exit_info:
        main("token_classification", ["--train_file", str(tmp_path / "train.conll"), "--output_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path / 'train.conll'} line 2: no tag (expected 'token<TAB>tag', got 'Smith')"]


# ------------------------------------------------------------------ alignment and windows
def test_first_sub_token_carries_the_label_or_all_do(tiny_tagger_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tagger_dir)
    words, tags = [["globex", "corp", "met", "zq"]], [[5, 6, 0, 1]]  # 5 B-ORG, 6 I-ORG, 1 B-X, 2 I-X
    continuation = [0, 2, 2, 3, 4, 6, 6]
    pieces = [tokenizer.tokenize(w) for w in words[0]]
    assert any(len(p) > 1 for p in pieces), pieces  # the test needs a word of several sub-tokens
    first = encode_windows(tokenizer, words, tags, 64, 8, False, continuation)["labels"][0]
    every = encode_windows(tokenizer, words, tags, 64, 8, True, continuation)["labels"][0]
    expected_first, expected_all = [-100], [-100]
    for piece, tag in zip(pieces, tags[0]):
        expected_first += [tag] + [-100] * (len(piece) - 1)
        expected_all += [tag] + [continuation[tag]] * (len(piece) - 1)
    assert first == expected_first + [-100] and every == expected_all + [-100]


def test_long_sentences_become_overlapping_windows_and_every_word_is_scored(tiny_tagger_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tagger_dir)
    words = [["alice", "met", "bob"] * 15]  # far more sub-tokens than one 16-token window holds
    encoded = encode_windows(tokenizer, words, [[1, 0, 1] * 15], 16, 4, False, [0, 2, 2])
    assert len(encoded["input_ids"]) > 3 and max(len(ids) for ids in encoded["input_ids"]) <= 16
    windows = [(example, [(w, w % 3, m) for w, m in zip(row, margin) if w != -100])
               for example, row, margin in zip(encoded["example_index"], encoded["word_index"], encoded["word_margin"])]
    predicted, unscored = word_predictions(windows, [45], outside_id=0)
    assert unscored == 0 and predicted == [[w % 3 for w in range(45)]]


def test_windows_point_at_their_sentence_across_map_batches(tiny_tagger_dir):
    """More sentences than one datasets.map batch (1,000): each window keeps its row in the whole split."""
    import datasets
    from transformers import AutoTokenizer

    from tasks.token_classification.data import Sentences, to_dataset

    sentences = toy_sentences(1200, 3)
    split = Sentences("x", [[w for w, _ in s] for s in sentences], [[t for _, t in s] for s in sentences],
                      [["x"] * len(s) for s in sentences])
    dataset, _, _ = to_dataset(split, "IOB2", None)
    task = get_task("token_classification")(_cfg("--max_seq_length", "32", "--doc_stride", "8"))
    encoded = task.preprocess(AutoTokenizer.from_pretrained(tiny_tagger_dir), dataset, "validation", TaskData({}))
    assert isinstance(encoded, datasets.Dataset) and len(encoded) > 1200
    words = {(e, w) for e, row in zip(encoded["example_index"], encoded["word_index"]) for w in row if w != -100}
    assert words == {(e, w) for e, s in enumerate(sentences) for w in range(len(s))}


def test_a_word_no_window_covers_is_scored_as_outside():
    predicted, unscored = word_predictions([(0, [(0, 3, 0), (2, 1, 0)])], [3], outside_id=0)
    assert predicted == [[3, 0, 1]] and unscored == 1


# ------------------------------------------------------------------ the metric
@pytest.mark.parametrize("references, predictions, expected", [
    # one of two entities found, the second predicted with the wrong type: P 1/2, R 1/2
    ([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-ORG"]], (0.5, 0.5, 0.5, 0.75)),
    # a span one word short is wrong; a stray I-LOC opens no entity in strict mode: P 0/1, R 0/2
    ([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "I-LOC"]], (0.0, 0.0, 0.0, 0.5)),
    # two adjacent same-type entities kept apart by B-: both found, plus one false positive: P 2/3, R 1
    ([["B-LOC", "B-LOC", "O"]], [["B-LOC", "B-LOC", "B-PER"]], (2 / 3, 1.0, 0.8, 2 / 3)),
])
def test_metric_matches_hand_worked_cases(references, predictions, expected):
    result = load_metric("seqeval").compute(predictions=predictions, references=references)
    assert (result["precision"], result["recall"], result["f1"], result["accuracy"]) == pytest.approx(expected)


def test_metric_agrees_with_seqeval_strict_iob2_on_random_tags():
    rng = random.Random(0)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    references = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(200)]
    predictions = [[t if rng.random() < 0.7 else rng.choice(tags) for t in row] for row in references]
    result = load_metric("seqeval").compute(predictions=predictions, references=references)
    report = classification_report(references, predictions, output_dict=True, mode="strict", scheme=IOB2,
                                   zero_division=0)
    assert result["f1"] == pytest.approx(report["micro avg"]["f1-score"])
    assert result["precision"] == pytest.approx(report["micro avg"]["precision"])
    for kind in ("PER", "LOC", "ORG"):
        assert result["per_type"][kind]["f1"] == pytest.approx(report[kind]["f1-score"])
        assert result["per_type"][kind]["number"] == report[kind]["support"]
    assert result["conlleval_f1"] == pytest.approx(f1_score(references, predictions))
    assert result["conlleval_f1"] != pytest.approx(result["f1"])  # stray I- tags: lenient and strict differ


def test_entity_confusion_counts_types_misses_and_false_spans():
    references = [["B-PER", "I-PER", "O", "B-LOC", "O"]]
    predictions = [["B-PER", "I-PER", "O", "B-ORG", "B-LOC"]]
    assert entity_confusion(references, predictions, ["LOC", "ORG", "PER"]) == [
        [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]]
