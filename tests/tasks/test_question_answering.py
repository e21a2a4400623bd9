"""Question answering: SQuAD metric by hand, data formats, bad input, striding, learning, pipeline round trip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import pipeline

from shared.toolkit.cli import main
from shared.toolkit.config import ConfigError, parse_config
from shared.inputs.data import DataError
from shared.evaluation.scoring import load_metric
from shared.task import get_task
from tasks.question_answering.pipeline import TAG
from tasks.question_answering.sample_data import make_rows
from tasks.question_answering.spans import answer_positions, best_answers, context_offsets, tokenize_windows
from tests.helpers import assert_merged_lora_export

FILLER = ["The weather was mild and the fields were green.", "Nothing else happened that year.",
          "Many travellers passed through the valley."]
LONG_CONTEXT = " ".join(FILLER * 3) + " The capital of Kalomir is Tavendor. " + " ".join(FILLER)


@pytest.fixture(scope="module")
def tiny_qa_dir(tmp_path_factory) -> Path:
    """A 2-layer, 64-wide BERT QA model with a WordPiece tokenizer trained on the sample's vocabulary."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForQuestionAnswering, BertTokenizerFast

    out = tmp_path_factory.mktemp("tiny_qa")
    corpus = [f"{r['context']} {r['question']}" for r in make_rows(300, seed=0)] + [LONG_CONTEXT]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tokenizer.save(str(out / "tokenizer.json"))
    fast = BertTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))
    fast.save_pretrained(out)
    config = BertConfig(vocab_size=fast.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)  # the same initial weights whichever tests ran before (the global RNG state differs)
    BertForQuestionAnswering(config).save_pretrained(out)
    return out


def _with_filler(rows: list[dict]) -> list[dict]:
    """Every other context gets filler sentences in front, so long contexts span several windows."""
    for row in rows[::2]:
        prefix = " ".join(FILLER) + " "
        row["context"] = prefix + row["context"]
        row["answers"]["answer_start"] = [s + len(prefix) for s in row["answers"]["answer_start"]]
    return rows


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _squad_json(path: Path, rows: list[dict]) -> Path:
    paragraphs = [{"context": r["context"], "qas": [{"id": r["id"], "question": r["question"], "answers": [
        {"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])]}]}
        for r in rows]
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}))
    return path


def _load(train: Path, *flags: str):
    task_class = get_task("question_answering")
    return task_class(parse_config(task_class.config_class, ["--train_file", str(train), *flags])).load_data()


# ---------------------------------------------------------------------- metric
def test_squad_metric_hand_computed():
    metric = load_metric("squad")
    predictions = [{"id": "a", "prediction_text": "The Eiffel Tower!"}, {"id": "b", "prediction_text": "in Paris"},
                   {"id": "c", "prediction_text": "blue"}]
    references = [{"id": "a", "answers": {"text": ["Eiffel tower"], "answer_start": [0]}},
                  {"id": "b", "answers": {"text": ["Paris France", "London"], "answer_start": [0, 0]}},
                  {"id": "c", "answers": {"text": ["red"], "answer_start": [0]}}]
    result = metric.compute(predictions=predictions, references=references)
    # a: normalised equal (article, case, punctuation) -> EM 1, F1 1
    # b: vs "paris france": common {paris} -> P 1/2, R 1/2, F1 1/2; vs "london" 0 -> EM 0, F1 1/2
    # c: nothing in common -> 0, 0
    assert result["exact_match"] == pytest.approx(100 / 3)
    assert result["f1"] == pytest.approx(100 * (1 + 0.5) / 3)
    assert result["total"] == 3


def test_squad_v2_metric_splits_answerable_and_unanswerable():
    metric = load_metric("squad")
    predictions = [{"id": "a", "prediction_text": "red car"}, {"id": "n1", "prediction_text": ""},
                   {"id": "n2", "prediction_text": "something"}]
    references = [{"id": "a", "answers": {"text": ["the red car"], "answer_start": [0]}},
                  {"id": "n1", "answers": {"text": [], "answer_start": []}},
                  {"id": "n2", "answers": {"text": [], "answer_start": []}}]
    result = metric.compute(predictions=predictions, references=references, version_2_with_negative=True)
    assert (result["HasAns_exact_match"], result["HasAns_f1"], result["HasAns_total"]) == (100.0, 100.0, 1)
    # "" is right for n1; any text is wrong for n2
    assert (result["NoAns_exact_match"], result["NoAns_f1"], result["NoAns_total"]) == (50.0, 50.0, 2)
    assert result["exact_match"] == pytest.approx(200 / 3)


# ---------------------------------------------------------------------- data
def test_squad_json_and_jsonl_give_the_same_rows(tmp_path):
    rows = make_rows(6, seed=3)
    from_json = _load(_squad_json(tmp_path / "train.json", rows), "--validation_split", "0.5")
    from_jsonl = _load(_jsonl(tmp_path / "train.jsonl", rows), "--validation_split", "0.5")
    for split in ("train", "validation"):
        assert from_json[split]["id"] == from_jsonl[split]["id"]
        assert from_json[split]["answers"] == from_jsonl[split]["answers"]


def test_embedded_sample_answers_sit_at_their_offsets():
    task_class = get_task("question_answering")
    data = task_class(parse_config(task_class.config_class, [])).load_data()
    assert len(data["train"]) == 600 and len(data["validation"]) == 150
    for row in data["validation"]:
        text, start = row["answers"]["text"][0], row["answers"]["answer_start"][0]
        assert row["context"][start:start + len(text)] == text


@pytest.mark.parametrize("case, match", [
    ("wrong_start", r"train\.jsonl line 3: answer 'Tavendor' is not at answer_start 2"),
    ("outside", r"train\.jsonl line 3: answer_start 999 is outside the context"),
    ("empty_question", r"train\.jsonl line 3: empty question"),
    ("empty_context", r"train\.jsonl line 3: empty context"),
    ("no_answer", r"train\.jsonl line 3: no answer \(pass --version_2_with_negative"),
    ("duplicate_id", r"train\.jsonl line 3: duplicate id 'sample-3-0'"),
])
def test_bad_rows_are_refused_naming_file_and_line(tmp_path, case, match):
    rows = make_rows(4, seed=3)
    bad = rows[2]
    bad["context"], bad["answers"] = "The capital of Kalomir is Tavendor.", {"text": ["Tavendor"], "answer_start": [26]}
    if case == "wrong_start":
        bad["answers"]["answer_start"] = [2]
    elif case == "outside":
        bad["answers"]["answer_start"] = [999]
    elif case == "empty_question":
        bad["question"] = "  "
    elif case == "empty_context":
        bad["context"] = ""
    elif case == "no_answer":
        bad["answers"] = {"text": [], "answer_start": []}
    elif case == "duplicate_id":
        bad["id"] = rows[0]["id"]
    with pytest.raises(DataError, match=match):
        _load(_jsonl(tmp_path / "train.jsonl", rows))


def test_bad_answers_can_be_skipped_with_a_count(tmp_path, capsys):
    rows = make_rows(10, seed=3)
    rows[4]["answers"]["answer_start"] = [0]
    data = _load(_jsonl(tmp_path / "train.jsonl", rows), "--skip_bad_answers", "--validation_split", "0.2")
    assert len(data["train"]) + len(data["validation"]) == 9
    assert "skipped 1 of 10 questions" in capsys.readouterr().out


def test_squad_json_error_names_article_paragraph_and_question(tmp_path):
    rows = make_rows(3, seed=3)
    rows[1]["answers"]["answer_start"] = [1]
    with pytest.raises(DataError, match=r"train\.json article 0 paragraph 1 question 0 \(id sample-3-1\)"):
        _load(_squad_json(tmp_path / "train.json", rows))


def test_unanswerable_rows_load_with_version_2(tmp_path):
    rows = make_rows(6, seed=3)
    rows[0]["answers"] = {"text": [], "answer_start": []}
    data = _load(_jsonl(tmp_path / "train.jsonl", rows), "--version_2_with_negative", "--validation_split", "0.5")
    assert sum(not a["text"] for split in data.splits.values() for a in split["answers"]) == 1


def test_stride_must_fit_the_window():
    with pytest.raises(ConfigError, match="--doc_stride"):
        parse_config(get_task("question_answering").config_class, ["--max_seq_length", "64", "--doc_stride", "40"])


# ---------------------------------------------------------------------- long contexts
def test_answer_in_the_second_window_is_labelled_and_decoded(tiny_qa_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qa_dir)
    answer_start = LONG_CONTEXT.index("Tavendor")
    encoded = tokenize_windows(tokenizer, ["What is the capital of Kalomir?"], [LONG_CONTEXT], 48, 16)
    offsets = [context_offsets(encoded, i) for i in range(len(encoded["input_ids"]))]
    positions = [answer_positions(o, answer_start, "Tavendor") for o in offsets]
    assert len(offsets) >= 3 and positions[0] == (0, 0)  # the first window cannot see the answer
    second = next(i for i, p in enumerate(positions) if p != (0, 0))
    assert second >= 1
    start, end = positions[second]
    assert LONG_CONTEXT[offsets[second][start][0]:offsets[second][end][1]] == "Tavendor"
    # logits that point at the answer only in that window decode back to the context's text
    windows = []
    for i, window_offsets in enumerate(offsets):
        start_logits, end_logits = np.zeros(len(window_offsets)), np.zeros(len(window_offsets))
        if i == second:
            start_logits[start], end_logits[end] = 9.0, 9.0
        windows.append((start_logits, end_logits, window_offsets))
    best = best_answers(windows, LONG_CONTEXT, n_best=5, max_answer_length=10, allow_null=False)
    assert best[0]["answer"] == "Tavendor" and best[0]["start"] == answer_start


def test_null_answer_wins_only_above_the_threshold():
    offsets = [None, (0, 3), (4, 9), None]
    start, end = np.array([5.0, 1.0, 0.0, 0.0]), np.array([5.0, 0.0, 1.0, 0.0])  # null 10 vs span 2
    windows = [(start, end, offsets)]
    assert best_answers(windows, "red apple", 5, 5, allow_null=True)[0]["answer"] == ""
    assert best_answers(windows, "red apple", 5, 5, allow_null=True, null_threshold=9.0)[0]["answer"] == "red apple"
    assert best_answers(windows, "red apple", 5, 5, allow_null=False)[0]["answer"] == "red apple"


# ---------------------------------------------------------------------- training and export
@pytest.fixture(scope="module")
def trained_run(tiny_qa_dir, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("qa_run")
    train = _jsonl(tmp / "train.jsonl", _with_filler(make_rows(240, seed=0, facts_per_context=1)))
    valid = _squad_json(tmp / "valid.json", _with_filler(make_rows(40, seed=1, facts_per_context=1)))
    main("question_answering", [
        "--model_name_or_path", str(tiny_qa_dir), "--train_file", str(train), "--validation_file", str(valid),
        "--output_dir", str(tmp), "--run_name", "run", "--num_train_epochs", "6", "--learning_rate", "3e-3",
        "--per_device_train_batch_size", "16", "--max_seq_length", "64", "--doc_stride", "16",
        "--eval_strategy", "steps", "--eval_steps", "10", "--save_strategy", "no", "--warmup_ratio", "0.1",
        "--mixed_precision", "no", "--seed", "0"])
    return tmp / "run"


def test_lora_adapts_the_encoder_trains_the_span_head_and_exports_merged(tiny_qa_dir, tmp_path, capsys):
    from transformers import AutoModelForQuestionAnswering

    train = _jsonl(tmp_path / "train.jsonl", make_rows(32, seed=0, facts_per_context=1))
    main("question_answering", [
        "--model_name_or_path", str(tiny_qa_dir), "--train_file", str(train), "--output_dir", str(tmp_path),
        "--run_name", "run", "--use_peft", "--max_train_steps", "3", "--learning_rate", "3e-3",
        "--per_device_train_batch_size", "8", "--max_seq_length", "64", "--doc_stride", "16", "--eval_strategy", "end",
        "--save_strategy", "no", "--mixed_precision", "no"])
    assert "trainable of" in capsys.readouterr().out
    best = tmp_path / "run" / "best"
    assert_merged_lora_export(tiny_qa_dir, best, AutoModelForQuestionAnswering, "bert.encoder.", "qa_outputs.")
    answer = pipeline(TAG, model=str(best))(question="What is the capital of Kalomir?",
                                            context="The capital of Kalomir is Tavendor.")
    assert answer["answer"] in "The capital of Kalomir is Tavendor."


def test_tiny_model_learns_exact_match(trained_run):
    history = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    exact = [r["eval/exact_match"] for r in history if "eval/exact_match" in r]
    # the tiny model plateaus near 70: it clips subword names and confuses "capital of X is Y" after filler
    assert len(exact) >= 5 and exact[0] < 50 and max(exact) >= 60 and max(exact) - exact[0] >= 25, exact
    results = json.loads((trained_run / "results.json").read_text())
    best = max((r for r in history if "eval/f1" in r), key=lambda r: r["eval/f1"])  # f1 picks the best step
    assert results["eval_f1"] == best["eval/f1"] >= results["eval_exact_match"] == best["eval/exact_match"]
    predictions = json.loads((trained_run / "predictions.json").read_text())
    assert len(predictions) == 40 and all(isinstance(v, str) for v in predictions.values())


def test_pipeline_round_trip(trained_run):
    qa = pipeline(TAG, model=str(trained_run / "best"))
    context = "The capital of Kalomir is Tavendor."
    answer = qa(question="What is the capital of Kalomir?", context=context)
    assert set(answer) == {"answer", "start", "end", "score"}
    assert context[answer["start"]:answer["end"]] == answer["answer"]
    # the tiny model (exact match ~70 on validation) may clip the subword name: require a piece of it
    assert answer["answer"].strip() and answer["answer"].strip() in "Tavendor", answer
    top = qa(question="What is the capital of Kalomir?", context=context, top_k=3)
    assert len(top) == 3 and top[0]["score"] >= top[1]["score"]
    batch = qa([{"question": "What is the capital of Kalomir?", "context": context}] * 3, batch_size=2)
    assert [a["answer"] for a in batch] == [answer["answer"]] * 3  # batching changes nothing
    # a long context is read in overlapping windows: the span comes from the fact, past the first window
    # (which ends inside the filler); the tiny model may still pick the wrong words of that sentence
    long = qa(question="What is the capital of Kalomir?", context=LONG_CONTEXT, max_seq_len=48, doc_stride=16)
    fact = LONG_CONTEXT.index("The capital")
    assert fact <= long["start"] < long["end"] <= fact + len("The capital of Kalomir is Tavendor."), long
    assert LONG_CONTEXT[long["start"]:long["end"]] == long["answer"]
    with pytest.raises(ValueError, match="non-empty"):
        qa(question="", context=context)


@pytest.mark.slow
def test_two_processes_answer_every_question_once(tiny_qa_dir, tmp_path):
    """31 questions with eval batch 4 per process: windows gathered as objects, padded duplicates dropped."""
    from tests.helpers import launch_two_cpu_processes

    train = _jsonl(tmp_path / "train.jsonl", make_rows(40, seed=0, facts_per_context=1))
    valid = _jsonl(tmp_path / "valid.jsonl", _with_filler(make_rows(31, seed=1, facts_per_context=1)))
    launch_two_cpu_processes(Path(__file__).resolve().parents[2] / "tasks" / "question_answering" / "train.py", [
        "--model_name_or_path", str(tiny_qa_dir), "--train_file", str(train), "--validation_file", str(valid),
        "--output_dir", str(tmp_path), "--run_name", "two", "--num_train_epochs", "1", "--max_seq_length", "64",
        "--doc_stride", "16", "--per_device_eval_batch_size", "4", "--mixed_precision", "no", "--save_strategy", "no"])
    assert json.loads((tmp_path / "two" / "results.json").read_text())["eval_total"] == 31
    assert len(json.loads((tmp_path / "two" / "predictions.json").read_text())) == 31
