"""Real `accelerate launch` subprocesses: one CPU process, and two processes over gloo."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import tiny_text_args, toy_reviews, write_csv

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tasks" / "text_classification" / "train.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(launcher_args: list[str], args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(ROOT)}  # the subprocess imports this checkout, whichever copy pip installed
    command = [sys.executable, "-m", "accelerate.commands.launch", *launcher_args, str(SCRIPT), *args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_accelerate_launch_single_cpu_process(tiny_bert_dir, toy_text_files, tmp_path):
    result = _launch(["--config_file", str(ROOT / "accelerate_config_cpu.yaml")],
                     tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out"))
    run = tmp_path / "out" / "run"
    assert json.loads((run / "results.json").read_text())["eval_accuracy"] >= 0.9
    assert "processes 1" in result.stdout and str(run / "best") in result.stdout


@pytest.mark.slow
def test_two_processes_evaluate_every_sample_once(tiny_bert_dir, tmp_path):
    """31 validation rows with batch 4 per process: gather_for_metrics must drop the padded duplicates."""
    train = write_csv(tmp_path / "train.csv", toy_reviews(96, 1))
    valid = write_csv(tmp_path / "valid.csv", toy_reviews(31, 2))
    args = tiny_text_args(tiny_bert_dir, train, valid, tmp_path / "two", "--per_device_eval_batch_size", "4",
                          "--per_device_train_batch_size", "8", "--num_train_epochs", "2", "--logging_steps", "1")
    result = _launch(["--multi_gpu", "--num_processes", "2", "--main_process_port", str(_free_port())], args)
    assert "processes 2" in result.stdout  # a silent fall back to one process would fail here
    run = tmp_path / "two" / "run"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in history if "eval/num_samples" in r]
    assert evals and all(r["eval/num_samples"] == 31 for r in evals)
    # 96 rows / (8 per process * 2 processes) = 6 optimizer steps per epoch, 12 in all, logged once each.
    assert [r["step"] for r in history if "train/loss" in r] == list(range(1, 13))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000006", "step_00000012"]
    assert (run / "best" / "model.safetensors").exists()
    results = json.loads((run / "results.json").read_text())
    # The confusion matrix counts each validation row exactly once.
    assert sum(map(sum, results["eval_confusion_matrix"])) == 31
