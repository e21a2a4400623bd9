"""predict.py for every task, the text tasks here (the image tasks: test_predict_images.py): train a tiny model,
predict a labelled file, check the written format, that the metrics equal the engine's on the same data, that a
failed or killed run leaves nothing complete-looking, and one process against two."""
from __future__ import annotations

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from shared.toolkit.cli import main
from tests.e2e.predict_helpers import (ROOT, assert_engine_metrics, fails_midway, format_class,
                                       one_and_two_process_rows, predict_file, reset_accelerate)
from tests.helpers import tiny_text_args, toy_reviews, write_csv

TASKS = ("text_classification", "question_answering", "translation", "image_classification", "object_detection",
         "semantic_segmentation", "token_classification")


def test_every_task_has_a_predict_script():
    from shared.task import list_tasks

    assert len(TASKS) == 7 and set(TASKS) <= set(list_tasks())
    for task in TASKS:
        assert (ROOT / "tasks" / task / "predict.py").is_file(), task


# ---------------------------------------------------------------------- text classification
@pytest.fixture(scope="module")
def text_run(tmp_path_factory, tiny_bert_dir):
    tmp = tmp_path_factory.mktemp("text_predict")
    train = write_csv(tmp / "train.csv", toy_reviews(64, seed=1))
    validation = write_csv(tmp / "validation.csv", toy_reviews(30, seed=2))
    main("text_classification", tiny_text_args(tiny_bert_dir, train, validation, tmp / "out", "--num_train_epochs", "2",
                                               "--per_device_eval_batch_size", "8"))
    reset_accelerate()
    return tmp / "out" / "run", validation


def test_text_classification_csv_and_jsonl_with_every_score(text_run, tmp_path):
    run, validation = text_run
    predict_file("text_classification", run / "best", validation, tmp_path / "p.csv")
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    texts = [text for text, _ in toy_reviews(30, seed=2)]
    assert [r["text"] for r in rows] == texts  # every input once, in input order
    assert set(rows[0]) == {"text", "label", "score_neg", "score_pos"}
    for row in rows:
        scores = {"neg": float(row["score_neg"]), "pos": float(row["score_pos"])}
        assert sum(scores.values()) == pytest.approx(1, abs=1e-5) and row["label"] == max(scores, key=scores.get)
    assert_engine_metrics(run, tmp_path / "p.csv")
    reset_accelerate()
    unlabelled = write_csv(tmp_path / "new.csv", [(t,) for t in texts[:5]], header=("text",))
    predict_file("text_classification", run / "best", unlabelled, tmp_path / "new" / "p.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "new" / "p.jsonl").read_text().splitlines()]
    assert [line["text"] for line in lines] == texts[:5] and set(lines[0]["scores"]) == {"neg", "pos"}
    assert [line["label"] for line in lines] == [r["label"] for r in rows[:5]]
    assert not (tmp_path / "new" / "predict_results.json").exists()  # nothing to score without labels


def test_rows_sorted_by_length_are_written_back_in_input_order(text_run, tmp_path, monkeypatch):
    import shared.serving.predict

    run, _ = text_run
    rng = random.Random(5)
    texts = [" and ".join(text for text, _ in toy_reviews(rng.randint(1, 6), seed=i)) for i in range(23)]
    source = write_csv(tmp_path / "in.csv", [(t,) for t in texts], header=("text",))
    monkeypatch.setattr(shared.serving.predict, "SORT_WINDOW", 8)  # several windows, each reordered
    predict_file("text_classification", run / "best", source, tmp_path / "sorted.csv",
                 "--per_device_eval_batch_size", "3")
    reset_accelerate()
    monkeypatch.setattr(format_class("text_classification"), "length_column", None)
    predict_file("text_classification", run / "best", source, tmp_path / "plain.csv",
                 "--per_device_eval_batch_size", "3")
    ordered, plain = (list(csv.DictReader((tmp_path / name).open())) for name in ("sorted.csv", "plain.csv"))
    assert [r["text"] for r in ordered] == texts == [r["text"] for r in plain]
    for a, b in zip(ordered, plain):
        assert a["label"] == b["label"] and float(a["score_pos"]) == pytest.approx(float(b["score_pos"]), abs=1e-5)


def test_text_classification_failure_leaves_no_output(text_run, tmp_path, monkeypatch):
    run, validation = text_run
    fails_midway(monkeypatch, "text_classification", run / "best", validation, tmp_path / "p.csv")


@pytest.mark.parametrize("rows, header, flags, match", [
    ([("fine", "pos"), ("", "neg")], ("text", "label"), [], r"row 1 \(line 3\): empty text in column 'text'"),
    ([("fine", "maybe")], ("text", "label"), [], r"row 0 \(line 2\): unknown label 'maybe'"),
    ([("fine",)], ("review",), [], r"missing column\(s\) \['text'\]"),
    ([("fine",)], ("text",), ["--output_is_wrong"], r"output_is_wrong"),
])
def test_bad_text_input_is_one_line_exit_2(text_run, tmp_path, capsys, rows, header, flags, match):
    run, _ = text_run
    source = write_csv(tmp_path / "in.csv", rows, header=header)
    with pytest.raises(SystemExit) as exit_info:
        predict_file("text_classification", run / "best", source, tmp_path / "p.csv", *flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # beside datasets' progress bars
    assert len(errors) == 1 and re.search(match, errors[0]) and "Traceback" not in err, err
    assert not (tmp_path / "p.csv").exists()


def test_output_suffix_is_checked_before_anything_runs(text_run, tmp_path, capsys):
    run, validation = text_run
    with pytest.raises(SystemExit):
        predict_file("text_classification", run / "best", validation, tmp_path / "p.parquet")
    assert "expected a file ending in .csv or .jsonl" in capsys.readouterr().err


def test_a_model_of_another_task_is_refused_by_its_training_info(text_run, tmp_path, capsys):
    run, validation = text_run
    with pytest.raises(SystemExit) as exit_info:
        predict_file("token_classification", run / "best", validation, tmp_path / "p.jsonl")
    assert exit_info.value.code == 2
    assert "was trained for text_classification (its training_info.json); predict with " \
           "tasks/text_classification/predict.py" in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.slow
def test_text_classification_two_processes_write_the_file_one_does(text_run, tmp_path):
    run, validation = text_run
    one, two = one_and_two_process_rows("text_classification", run / "best", validation, tmp_path)
    assert len(two) == len(one) == 30
    for a, b in zip(one, two):
        assert a["text"] == b["text"] and a["label"] == b["label"]
        assert float(a["score_pos"]) == pytest.approx(float(b["score_pos"]), abs=1e-5)


@pytest.mark.slow
def test_killed_prediction_leaves_only_a_partial_file(text_run, tmp_path):
    run, _ = text_run
    source = write_csv(tmp_path / "many.csv", toy_reviews(20000, seed=3))
    output = tmp_path / "p.csv"
    partial = tmp_path / ".p.csv.partial"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, str(ROOT / "tasks" / "text_classification" / "predict.py"),
                                "--model_name_or_path", str(run / "best"), "--input", str(source), "--output",
                                str(output), "--per_device_eval_batch_size", "8"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (partial.exists() and partial.stat().st_size > 1000):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert partial.exists() and not output.exists()


# ---------------------------------------------------------------------- question answering
@pytest.fixture(scope="module")
def qa_run(tmp_path_factory, tiny_bert_dir):
    from tasks.question_answering.sample_data import make_rows

    tmp = tmp_path_factory.mktemp("qa_predict")
    train, valid = tmp / "train.jsonl", tmp / "valid.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in make_rows(48, seed=0, facts_per_context=1)))
    rows = make_rows(12, seed=1, facts_per_context=1)
    for row in rows[::2]:  # long contexts: several windows per question, which may straddle batches
        filler = "Nothing else happened that year. " * 6
        row["context"] = filler + row["context"]
        row["answers"]["answer_start"] = [s + len(filler) for s in row["answers"]["answer_start"]]
    valid.write_text("".join(json.dumps(r) + "\n" for r in rows))
    main("question_answering", [
        "--model_name_or_path", str(tiny_bert_dir), "--train_file", str(train), "--validation_file", str(valid),
        "--output_dir", str(tmp), "--run_name", "run", "--max_train_steps", "4", "--learning_rate", "3e-3",
        "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "4", "--max_seq_length", "64",
        "--doc_stride", "16", "--eval_strategy", "end", "--save_strategy", "no", "--mixed_precision", "no",
        "--seed", "0"])
    reset_accelerate()
    return tmp / "run", valid, rows


def test_question_answering_squad_predictions_and_scored_jsonl(qa_run, tmp_path):
    run, valid, rows = qa_run
    predict_file("question_answering", run / "best", valid, tmp_path / "predictions.json",
                 "--per_device_eval_batch_size", "3")
    answers = json.loads((tmp_path / "predictions.json").read_text())
    assert list(answers) == [r["id"] for r in rows]
    lines = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    for line, row in zip(lines, rows):
        assert line["id"] == row["id"] and answers[row["id"]] == line["answer"]
        assert row["context"][line["start"]:line["end"]] == line["answer"] and 0 <= line["score"] <= 1
    assert_engine_metrics(run, tmp_path / "predictions.json")
    # the engine's own predictions.json for the same questions
    assert answers == json.loads((run / "predictions.json").read_text())


# ---------------------------------------------------------------------- translation
@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    rng = random.Random(0)
    words = ["ka", "lo", "mi", "ta", "ve", "do", "si", "ra"]
    pairs = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 5))) for _ in range(60)]
    tmp = tmp_path_factory.mktemp("mt_predict")
    train, valid = tmp / "train.jsonl", tmp / "valid.jsonl"
    for path, texts in ((train, pairs[:48]), (valid, pairs[48:])):
        path.write_text("".join(json.dumps({"translation": {"src": t, "tgt": t}}) + "\n" for t in texts))
    main("translation", [
        "--train_file", str(train), "--validation_file", str(valid), "--source_lang", "src", "--target_lang", "tgt",
        "--output_dir", str(tmp), "--run_name", "run", "--d_model", "32", "--ffn_dim", "64", "--encoder_layers", "1",
        "--decoder_layers", "1", "--attention_heads", "2", "--vocab_size", "60", "--max_train_steps", "6",
        "--learning_rate", "3e-3", "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "5",
        "--num_beams", "2", "--max_target_length", "12", "--eval_strategy", "end", "--save_strategy", "no",
        "--mixed_precision", "no", "--seed", "0"])
    reset_accelerate()
    return tmp / "run", valid, pairs[48:]


def test_translation_lines_and_jsonl(translation_run, tmp_path):
    run, valid, sources = translation_run
    predict_file("translation", run / "best", valid, tmp_path / "t.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [line["source"] for line in lines] == sources and all("translation" in line for line in lines)
    assert_engine_metrics(run, tmp_path / "t.jsonl")
    engine = [json.loads(line)["prediction"] for line in (run / "translations.jsonl").read_text().splitlines()]
    assert [line["translation"] for line in lines] == engine
    reset_accelerate()
    text = tmp_path / "in.txt"
    text.write_text(f"{sources[0]}\n\n{sources[1]}\n")  # a blank line stays a blank line
    predict_file("translation", run / "best", text, tmp_path / "out" / "t.txt")
    assert (tmp_path / "out" / "t.txt").read_text().split("\n") == [engine[0], "", engine[1], ""]

