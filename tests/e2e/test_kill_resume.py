"""A run killed with SIGKILL after a checkpoint resumes to the same weights and metrics as an unbroken run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import tiny_text_args, without_timing

ROOT = Path(__file__).resolve().parents[2]


def _command(task: str, args: list[str]) -> list[str]:
    return [sys.executable, str(ROOT / "tasks" / task / "train.py"), *args]


def _env() -> dict:
    # PYTHONPATH: the subprocess imports this checkout, whichever copy of the project pip installed
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def _kill_after(command: list[str], checkpoint: Path, timeout: float = 300) -> None:
    process = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not (checkpoint / "train_state.json").exists():
        assert process.poll() is None, "the run ended before the checkpoint the test waits for"
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _final_eval(run: Path) -> dict:
    records = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    return without_timing([r for r in records if "eval/accuracy" in r][-1])


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["steps", "epoch"])
def test_sigkill_then_resume_latest_matches_an_unbroken_run(tiny_bert_dir, toy_text_files, tmp_path, strategy):
    save = ["--save_strategy", "steps", "--save_steps", "10"] if strategy == "steps" else ["--save_strategy", "epoch"]
    args = lambda out: tiny_text_args(tiny_bert_dir, *toy_text_files, out, "--num_train_epochs", "20",
                                      "--save_total_limit", "100", *save)
    subprocess.run(_command("text_classification", args(tmp_path / "unbroken")), cwd=ROOT, env=_env(), check=True,
                   capture_output=True)
    broken = tmp_path / "broken"
    target = "step_00000040" if strategy == "steps" else "step_00000042"  # 6 steps per epoch: end of epoch 7
    _kill_after(_command("text_classification", args(broken)), broken / "run" / "checkpoints" / target)
    assert not (broken / "run" / "results.json").exists()
    subprocess.run(_command("text_classification", [*args(broken), "--resume_from_checkpoint", "latest"]),
                   cwd=ROOT, env=_env(), check=True, capture_output=True)
    a = load_file(str(tmp_path / "unbroken" / "run" / "last" / "model.safetensors"))
    b = load_file(str(broken / "run" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit on CPU
    assert _final_eval(tmp_path / "unbroken" / "run") == _final_eval(broken / "run")
    steps = [json.loads(line)["step"] for line in (broken / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # lines replayed after the checkpoint were not duplicated
