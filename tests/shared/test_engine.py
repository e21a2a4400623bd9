"""The engine end to end on a tiny model: learning, exact resume, schedules, accumulation, EMA, guards."""
from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import pipeline

from tests.helpers import without_timing, tiny_text_args
from shared.toolkit.cli import main
from shared.training.engine import TrainingDiverged


def _history(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _weights(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


def test_tiny_model_learns_and_writes_run_folder(tiny_bert_dir, toy_text_files, tmp_path):
    results = main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out"))
    run = tmp_path / "out" / "run"
    history = _history(run)
    losses = [r["train/loss"] for r in history if "train/loss" in r]
    accuracies = [r["eval/accuracy"] for r in history if "eval/accuracy" in r]
    assert losses[-1] < 0.5 * losses[0], losses
    assert accuracies[-1] > accuracies[0] and accuracies[-1] >= 0.9, accuracies
    assert results["eval_accuracy"] == max(accuracies)
    for name in ("config.yaml", "metrics.jsonl", "results.json", "best/config.json", "best/README.md",
                 "best/tokenizer.json", "last/model.safetensors", "plots/loss.png", "plots/confusion_matrix.png"):
        assert (run / name).exists(), name
    steps = [r["step"] for r in history]
    assert steps == sorted(steps)


def test_eval_strategy_end_evaluates_once_after_training_and_reports_throughputs(tiny_bert_dir, toy_text_files,
                                                                                   tmp_path):
    args = tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out", "--num_train_epochs", "2",
                          "--eval_strategy", "end", "--save_strategy", "no")
    results = main("text_classification", args)
    history = _history(tmp_path / "out" / "run")
    evals = [r for r in history if "eval/accuracy" in r]
    assert len(evals) == 1 and evals[0] == history[-1] and evals[0]["step"] == 12  # one eval, after training
    assert results["global_step"] == results["best_step"] == 12 and results["eval_accuracy"] == evals[0]["eval/accuracy"]
    assert all("time_s" in r for r in history) and [r["time_s"] for r in history] == sorted(r["time_s"] for r in history)
    assert results["train_step_samples_per_second"] >= results["train_samples_per_second"] > 0
    assert results["eval_samples_per_second"] > 0 and 0 < results["train_data_wait_fraction"] < 1


def test_resume_from_step_checkpoint_is_bit_exact(tiny_bert_dir, toy_text_files, tmp_path):
    extra = ["--save_strategy", "steps", "--save_steps", "5", "--save_total_limit", "10", "--eval_strategy", "epoch"]
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "a", *extra))
    full = tmp_path / "a" / "run"
    # A second run that starts from the step-10 checkpoint of the first (mid-epoch: 6 steps per epoch).
    resumed = tmp_path / "b" / "run"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(full / "checkpoints" / "step_00000010", resumed / "checkpoints" / "step_00000010")
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "b", *extra,
                                                "--resume_from_checkpoint", "latest"))
    a, b = _weights(full / "last"), _weights(resumed / "last")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    final_a = [r for r in _history(full) if "eval/accuracy" in r][-1]
    final_b = [r for r in _history(resumed) if "eval/accuracy" in r][-1]
    assert without_timing(final_a) == without_timing(final_b)


def test_learning_rate_schedule_and_accumulation(tiny_bert_dir, toy_text_files, tmp_path):
    args = tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out", "--gradient_accumulation_steps", "2",
                          "--lr_scheduler_type", "cosine", "--warmup_ratio", "0", "--logging_steps", "1",
                          "--num_train_epochs", "2", "--eval_strategy", "no")
    main("text_classification", args)
    history = [r for r in _history(tmp_path / "out" / "run") if "train/lr" in r]
    # 96 rows / batch 16 = 6 micro-batches per epoch -> 3 optimizer steps per epoch -> 6 steps.
    assert [r["step"] for r in history] == [1, 2, 3, 4, 5, 6]
    lrs = [r["train/lr"] for r in history]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_early_stopping_stops_before_the_last_epoch(tiny_bert_dir, toy_text_files, tmp_path):
    args = tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out", "--num_train_epochs", "30",
                          "--early_stopping_patience", "2", "--early_stopping_min_delta", "0.6")
    results = main("text_classification", args)
    assert results["global_step"] == 3 * 6  # first eval sets best; no later eval can gain 0.6, so the third stops the run


def test_nan_loss_stops_with_step_and_hint(tiny_bert_dir, toy_text_files, tmp_path, capsys):
    args = tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out", "--learning_rate", "1e30",
                          "--max_grad_norm", "0", "--logging_steps", "1")
    with pytest.raises(SystemExit) as stop:
        main("text_classification", args)
    assert stop.value.code == 3
    assert re.search(r"error: loss became (nan|inf) at or before optimizer step \d+ \(epoch 0\)\. Try a lower "
                     r"--learning_rate", capsys.readouterr().err, re.M)


def test_divergence_is_caught_before_a_checkpoint_is_saved(tiny_bert_dir, toy_text_files, tmp_path, capsys):
    """Logging every 50 steps but saving every step: the guard runs at each save, so no checkpoint written
    after the loss went NaN exists for `--resume_from_checkpoint latest` to pick."""
    from shared.training.engine import Engine
    from shared.toolkit.config import parse_config
    from shared.task import get_task

    task = get_task("text_classification")
    cfg = parse_config(task.config_class, tiny_text_args(
        tiny_bert_dir, *toy_text_files, tmp_path / "out", "--learning_rate", "1e30", "--max_grad_norm", "0",
        "--logging_steps", "50", "--save_strategy", "steps", "--save_steps", "1", "--save_total_limit", "100"))
    engine = Engine(task(cfg))
    engine.setup()
    with pytest.raises(TrainingDiverged, match=r"optimizer step (\d+)") as error:
        engine.train()
    failed_at = int(re.search(r"optimizer step (\d+)", str(error.value)).group(1))
    assert failed_at < 50  # found at a save, long before the first log
    saved = sorted(int(p.name.split("_")[1]) for p in (tmp_path / "out" / "run" / "checkpoints").glob("step_*"))
    assert saved == list(range(1, failed_at))


def test_bf16_on_cpu_trains(tiny_bert_dir, toy_text_files, tmp_path):
    """bf16 autocast on the CPU (what --mixed_precision auto picks on CPUs with AMX/AVX512-BF16): the loss falls."""
    results = main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out",
                                                         "--mixed_precision", "bf16", "--eval_strategy", "no"))
    assert results["precision"] == "bf16"
    losses = [r["train/loss"] for r in _history(tmp_path / "out" / "run") if "train/loss" in r]
    assert losses[-1] < 0.5 * losses[0], losses


def test_ema_weights_are_saved(tiny_bert_dir, toy_text_files, tmp_path):
    args = tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out", "--ema_decay", "0.9",
                          "--num_train_epochs", "1", "--eval_strategy", "no")
    main("text_classification", args)
    run = tmp_path / "out" / "run"
    assert (run / "last" / "model.safetensors").exists()
    # The EMA export differs from a plain run with the same seed.
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "plain",
                                                "--num_train_epochs", "1", "--eval_strategy", "no"))
    ema, plain = _weights(run / "last"), _weights(tmp_path / "plain" / "run" / "last")
    assert any(not torch.equal(ema[k], plain[k]) for k in ema)


def test_length_grouped_batches_cover_every_row_once_and_cut_padding():
    from shared.training.sampling import LengthGroupedBatchSampler

    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 120, (1000,), generator=generator).tolist()
    sampler = LengthGroupedBatchSampler(lengths, batch_size=16, seed=3, mega=8)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(len(b) == 16 for b in batches[:-1]) and len(batches) == len(sampler)
    assert batches == list(sampler)  # same epoch, same order
    sampler.set_epoch(1)
    assert list(sampler) != batches
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    order = torch.randperm(1000, generator=generator).tolist()
    random_padded = sum(16 * max(lengths[i] for i in order[k:k + 16]) for k in range(0, 1000, 16))
    assert padded < 0.7 * random_padded


def test_checkpoint_killed_mid_write_is_ignored_and_pruning_keeps_the_last_k(tiny_bert_dir, toy_text_files, tmp_path):
    extra = ["--save_strategy", "steps", "--save_steps", "4", "--save_total_limit", "2", "--eval_strategy", "no"]
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "a", *extra))
    checkpoints = tmp_path / "a" / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_00000044", "step_00000048"]
    # A run killed while writing leaves a temp folder, or a folder without its state file.
    (checkpoints / ".tmp-step_00000052").mkdir()
    (checkpoints / "step_00000056").mkdir()
    from shared.training.checkpoint import CheckpointManager
    assert CheckpointManager(tmp_path / "a" / "run", 2).latest().name == "step_00000048"


def test_resume_into_data_with_another_label_count_is_refused(tiny_bert_dir, toy_text_files, tmp_path, capsys):
    extra = ["--save_strategy", "epoch", "--num_train_epochs", "1", "--eval_strategy", "no"]
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "a", *extra))
    from tests.helpers import write_csv
    three = write_csv(tmp_path / "three.csv", [(t, lab) for t, lab in
                                               [("a b", "x"), ("c d", "y"), ("e f", "z")] * 10])
    with pytest.raises(SystemExit):
        main("text_classification", tiny_text_args(tiny_bert_dir, three, three, tmp_path / "a", *extra,
                                                    "--resume_from_checkpoint", "latest", "--num_train_epochs", "2"))
    assert "head of 2 labels but the data has 3" in capsys.readouterr().err


def test_push_to_hub_offline_stops_before_training(tiny_bert_dir, toy_text_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit) as stop:
        main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "a",
                                                    "--push_to_hub", "--hub_model_id", "me/model"))
    assert stop.value.code == 2 and "error: --push_to_hub: HF_HUB_OFFLINE is set" in capsys.readouterr().err
    assert not (tmp_path / "a" / "run" / "metrics.jsonl").exists()


def test_tensorboard_tracker_writes_events(tiny_bert_dir, toy_text_files, tmp_path):
    pytest.importorskip("tensorboard")
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "a", "--report_to",
                                                "tensorboard", "--num_train_epochs", "1"))
    assert list((tmp_path / "a" / "run" / "logs").rglob("events.out.tfevents.*"))


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")), reason="torch.compile on CPU needs a C++ compiler")
def test_torch_compile_trains_and_exports_plain_weights(tiny_bert_dir, toy_text_files, tmp_path):
    results = main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out",
                                                          "--torch_compile", "--num_train_epochs", "4"))
    assert results["eval_accuracy"] >= 0.9
    best = tmp_path / "out" / "run" / "best"
    assert not [k for k in load_file(best / "model.safetensors") if "_orig_mod" in k]  # no compile wrapper names
    assert pipeline("text-classification", model=str(best))("the lamp is wonderful and book")[0]["label"] == "pos"
