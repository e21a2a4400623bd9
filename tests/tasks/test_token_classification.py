"""Token classification: readers and tag schemes, bad input, alignment and windows, the metric, training, pipeline."""
from __future__ import annotations

import json
import random

import pytest
import torch
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2
from transformers import pipeline

from shared.toolkit.cli import main
from shared.toolkit.config import parse_config
from shared.inputs.data import DataError
from shared.evaluation.scoring import load_metric
from shared.task import TaskData, get_task
from tasks.token_classification.alignment import encode_windows, entity_confusion, word_predictions

FIRST = {"alice": "PER", "bob": "PER", "carol": "PER", "paris": "LOC", "new": "LOC", "acme": "ORG", "globex": "ORG"}
SECOND = {"PER": ["smith", "jones"], "LOC": ["york"], "ORG": ["corp"]}
FILLER = ["met", "in", "at", "the", "visited", "from", "works", "for", "today", "with"]


def toy_sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Sentences whose tags the words decide (a first word opens its type, a second word continues it)."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words = []
        for _ in range(rng.randint(2, 4)):
            words += [(w, "O") for w in rng.sample(FILLER, rng.randint(1, 2))]
            first = rng.choice(sorted(FIRST))
            kind = FIRST[first]
            words.append((first, f"B-{kind}"))
            if first == "new" or rng.random() < 0.5:
                words.append((rng.choice(SECOND[kind]), f"I-{kind}"))
        sentences.append(words)
    return sentences


def write_conll(path, sentences, separator="\t") -> str:
    path.write_text("".join("".join(f"{w}{separator}{t}\n" for w, t in s) + "\n" for s in sentences))
    return str(path)


@pytest.fixture(scope="module")
def tiny_tagger_dir(tmp_path_factory):
    """A 2-layer, 32-wide BERT whose small WordPiece vocabulary splits some toy words into several pieces.

    The vocabulary is the one tokenizers' WordPiece trainer gave for these toy sentences (vocab_size 90),
    written out: the trainer breaks ties in another order in every process, and those ids moved this
    test's F1 between 0.87 and 0.92 from run to run.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

    out = tmp_path_factory.mktemp("tiny_tagger")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k",
             "l", "m", "n", "o", "p", "q", "r", "s", "t", "v", "w", "x", "y", "z", "##r", "##o", "##m", "##t", "##q",
             "##n", "##c", "##e", "##l", "##i", "##w", "##k", "##s", "##d", "##a", "##h", "##b", "##x", "##y", "##p",
             "##or", "##it", "##ork", "##is", "##ar", "##ob", "##ith", "york", "at", "par", "paris", "work", "works",
             "ne", "new", "th", "the", "car", "vis", "##ol", "##ed", "##ited", "carol", "visited", "fr", "##om",
             "from", "me", "met", "for", "in", "bob", "with", "gl", "##ex", "##obex", "globex", "to", "##da", "toda"]
    tokenizer = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.save(str(out / "tokenizer.json"))
    BertTokenizerFast(tokenizer_file=str(out / "tokenizer.json")).save_pretrained(out)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertForTokenClassification(config).save_pretrained(out)
    return out


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


# ------------------------------------------------------------------ training
def _toy_files(tmp_path):
    return (write_conll(tmp_path / "train.conll", toy_sentences(160, 1)),
            write_conll(tmp_path / "validation.conll", toy_sentences(40, 2), separator=" "))


def _args(model, train, validation, out, *extra):
    return ["--model_name_or_path", str(model), "--train_file", train, "--validation_file", validation,
            "--output_dir", str(out), "--run_name", "run", "--num_train_epochs", "6", "--learning_rate", "5e-3",
            "--per_device_train_batch_size", "16", "--warmup_ratio", "0.1", "--mixed_precision", "no",
            "--logging_steps", "2", "--seed", "0", "--cpu_threads", "1", *extra]


@pytest.fixture(scope="module")
def trained(tiny_tagger_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("token_run")
    train, validation = _toy_files(root)
    results = main("token_classification", _args(tiny_tagger_dir, train, validation, root / "out"))
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return root / "out" / "run", results


def test_training_lowers_the_loss_and_reaches_a_high_entity_f1(trained):
    run, results = trained
    losses = [json.loads(line)["train/loss"] for line in (run / "metrics.jsonl").read_text().splitlines()
              if "train/loss" in line]
    assert losses[-1] < losses[0] / 3
    assert results["eval_f1"] >= 0.9 and results["main_metric"] == "f1"
    assert set(results["eval_per_type"]) == {"LOC", "ORG", "PER"} and results["eval_unscored_words"] == 0
    for figure in ("per_type_f1.png", "entity_confusion.png"):
        assert (run / "plots" / figure).stat().st_size > 1000
    lines = (run / "predictions.conll").read_text().splitlines()
    assert len(lines[0].split("\t")) == 3


def _entities(tagger, text: str, strategy: str) -> list[tuple[str, str]]:
    return [(e["entity_group"], e["word"]) for e in tagger(text, aggregation_strategy=strategy)]


def test_saved_model_gives_whole_entities_in_the_pipeline(trained):
    tagger = pipeline("token-classification", model=str(trained[0] / "best"))
    assert _entities(tagger, "bob met globex in new york with carol", "simple") == [
        ("PER", "bob"), ("ORG", "globex"), ("LOC", "new york"), ("PER", "carol")]
    # words of several sub-tokens: only their first was trained, so the word-level strategy reads that one
    assert _entities(tagger, "today bob jones visited paris with globex corp", "first") == [
        ("PER", "bob jones"), ("LOC", "paris"), ("ORG", "globex corp")]


def test_predict_writes_conll_and_jsonl_and_scores_tagged_input(trained, tmp_path):
    from shared.toolkit.cli import predict_main
    from tasks.token_classification.predictions import PREDICTIONS

    run, results = trained
    validation = run.parent.parent / "validation.conll"
    scored = predict_main("token_classification", PREDICTIONS, [
        "--model_name_or_path", str(run / "best"), "--input", str(validation), "--output", str(tmp_path / "p.conll"),
        "--per_device_eval_batch_size", "7"])
    assert scored["predict_f1"] == pytest.approx(results["eval_f1"])  # the engine's words and scorer
    sentences = (tmp_path / "p.conll").read_text().strip().split("\n\n")
    assert len(sentences) == 40 and all(len(line.split("\t")) == 3 for line in sentences[0].splitlines())
    assert json.loads((tmp_path / "predict_results.json").read_text())["predict_f1"] == scored["predict_f1"]
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    (tmp_path / "words.jsonl").write_text(json.dumps({"tokens": "bob met globex in new york".split()}) + "\n")
    predict_main("token_classification", PREDICTIONS, ["--model_name_or_path", str(run / "best"), "--input",
                                                       str(tmp_path / "words.jsonl"), "--output",
                                                       str(tmp_path / "p.jsonl")])
    (record,) = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [(e["type"], e["text"]) for e in record["entities"]] == [("PER", "bob"), ("ORG", "globex"),
                                                                    ("LOC", "new york")]
    assert len(record["scores"]) == 6 and "true_tags" not in record


def test_demo_highlights_entities_and_lists_them(trained):
    spec = get_task("token_classification").demo()
    tagger = pipeline(spec.pipeline_tag, model=str(trained[0] / "best"))
    text = "bob jones met carol in paris " * 20  # longer than the tiny model's 64 positions: strided windows
    highlighted, table = spec.predict(tagger, text)
    assert highlighted["text"] == text
    assert [row[1] for row in table[:3]] == ["PER", "PER", "LOC"] and len(table) == 60
    assert table[0][0] == "bob jones" and all(0 < row[2] <= 1 for row in table)


def test_lora_trains_the_adapters_and_the_head(tiny_tagger_dir, tmp_path):
    from transformers import BertForTokenClassification

    from tests.helpers import assert_merged_lora_export

    train, validation = _toy_files(tmp_path)
    results = main("token_classification", _args(tiny_tagger_dir, train, validation, tmp_path / "out", "--use_peft",
                                                 "--learning_rate", "2e-2", "--num_train_epochs", "4"))
    assert results["eval_f1"] > 0.5
    assert_merged_lora_export(tiny_tagger_dir, tmp_path / "out" / "run" / "best", BertForTokenClassification,
                              "bert.encoder", "classifier")


def test_label_all_tokens_and_class_weights_train(tiny_tagger_dir, tmp_path):
    train, validation = _toy_files(tmp_path)
    results = main("token_classification", _args(tiny_tagger_dir, train, validation, tmp_path / "out",
                                                 "--label_all_tokens", "--class_weights", "sqrt_balanced",
                                                 "--max_seq_length", "16", "--doc_stride", "4",
                                                 "--test_file", validation))
    assert results["eval_f1"] >= 0.8 and results["eval_unscored_words"] == 0
    test = json.loads((tmp_path / "out" / "run" / "test_results.json").read_text())
    assert test["test_f1"] == pytest.approx(results["eval_f1"])  # the best model on the same sentences
    tagger = pipeline("token-classification", model=str(tmp_path / "out" / "run" / "best"))
    # every sub-token trained: the sub-token-level strategy gives whole words too
    assert _entities(tagger, "today bob jones visited paris with globex corp", "simple") == [
        ("PER", "bob jones"), ("LOC", "paris"), ("ORG", "globex corp")]


def test_distillation_from_a_trained_tagger(trained, tiny_tagger_dir, tmp_path):
    train, validation = _toy_files(tmp_path)
    results = main("token_classification", _args(tiny_tagger_dir, train, validation, tmp_path / "out",
                                                 "--teacher_model", str(trained[0] / "best"), "--distill_alpha", "0.5"))
    assert results["eval_f1"] >= 0.8


@pytest.mark.slow
def test_two_processes_score_every_word_once(tiny_tagger_dir, tmp_path):
    """Two gloo processes, 40 validation sentences in batches of 3 per process (a ragged tail): the gathered
    windows cover every word once, and one process scoring the saved model gets the same F1."""
    from pathlib import Path

    from shared.toolkit.cli import predict_main
    from tasks.token_classification.predictions import PREDICTIONS
    from tests.helpers import launch_two_cpu_processes

    train, validation = _toy_files(tmp_path)
    script = Path(__file__).resolve().parents[2] / "tasks" / "token_classification" / "train.py"
    launch_two_cpu_processes(script, _args(tiny_tagger_dir, train, validation, tmp_path / "out",
                                           "--per_device_eval_batch_size", "3", "--num_train_epochs", "3"))
    results = json.loads((tmp_path / "out" / "run" / "results.json").read_text())
    words = sum(len(s) for s in toy_sentences(40, 2))
    assert results["num_processes"] == 2 and results["last_eval_num_words"] == words
    assert results["last_eval_unscored_words"] == 0
    scored = predict_main("token_classification", PREDICTIONS, [
        "--model_name_or_path", str(tmp_path / "out" / "run" / "last"), "--input", validation,
        "--output", str(tmp_path / "p.conll")])
    assert scored["predict_f1"] == pytest.approx(results["last_eval_f1"])


# ------------------------------------------------------------------ accelerate launch, kill and resume
KILLER = """
import os, signal, sys
import tasks
from shared.training import checkpoint
from shared.toolkit.cli import main

save = checkpoint.CheckpointManager.save

def save_then_die(self, accelerator, state, *args, **kwargs):
    path = save(self, accelerator, state, *args, **kwargs)
    if state.step == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    return path

checkpoint.CheckpointManager.save = save_then_die
main("token_classification", sys.argv[2:])
"""


@pytest.mark.slow
def test_accelerate_launch_then_sigkill_and_resume_matches_an_unbroken_run(tiny_tagger_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(root)}
    train, validation = _toy_files(tmp_path)
    flags = lambda out, *extra: _args(tiny_tagger_dir, train, validation, out, *extra)  # 10 steps an epoch, 60
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(root / "accelerate_config_cpu.yaml"), str(root / "tasks" / "token_classification" / "train.py")]
    unbroken = subprocess.run([*launch, *flags(tmp_path / "a", "--save_strategy", "no")], cwd=root, env=env,
                              capture_output=True, text=True, timeout=600)
    assert unbroken.returncode == 0, unbroken.stderr[-3000:]
    assert "processes 1" in unbroken.stdout and "tag scheme IOB2" in unbroken.stdout
    saving = flags(tmp_path / "b", "--save_strategy", "steps", "--save_steps", "10")
    killed = subprocess.run([sys.executable, "-c", KILLER, "20", *saving],
                            cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = subprocess.run([sys.executable, str(root / "tasks" / "token_classification" / "train.py"), *saving,
                              "--resume_from_checkpoint", "latest"], cwd=root, env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0 and "resumed from" in resumed.stdout, resumed.stderr[-3000:]
    scores = [{k: v for k, v in json.loads((tmp_path / run / "run" / "results.json").read_text()).items()
               if k.startswith("eval_") and "per_second" not in k} for run in ("a", "b")]
    assert scores[0] == scores[1] and scores[0]["eval_f1"] >= 0.8
    weights = [load_file(tmp_path / run / "run" / "best" / "model.safetensors") for run in ("a", "b")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
