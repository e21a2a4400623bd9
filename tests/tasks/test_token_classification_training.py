"""Token classification: training, the pipeline, predict, the demo, LoRA, distillation, two processes, kill and resume."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import pipeline

from shared.toolkit.cli import main
from shared.task import get_task

from tests.tasks.token_fixtures import tiny_tagger_dir, toy_sentences, write_conll  # noqa: F401 (a fixture)


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


@pytest.mark.slow
def test_hyperparameter_search_tunes_the_entity_f1(tiny_tagger_dir, tmp_path):
    """--hpo_trials on the tagger: two short trials, each scored by its entity F1, the study table written."""
    pytest.importorskip("optuna")
    import csv

    from accelerate.state import AcceleratorState, GradientState

    train, validation = _toy_files(tmp_path)
    summary = main("token_classification", _args(tiny_tagger_dir, train, validation, tmp_path / "out", "--hpo_trials",
                                                 "2", "--num_train_epochs", "1", "--run_name", "study"))
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    with (tmp_path / "out" / "study" / "study.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 2
    assert summary["trials"] == 2 and summary["main_metric"] == "f1" and 0.0 <= summary["best_metric"] <= 1.0
    assert (tmp_path / "out" / "study" / "trial_0000" / "best" / "config.json").is_file()


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
