"""A run killed with SIGKILL (after a checkpoint, or while writing one) resumes with `--resume_from_checkpoint
latest` to the same weights and metrics as an unbroken run, bit for bit on CPU: one text and one vision task."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from shared.training.checkpoint import CheckpointManager
from tests.helpers import tiny_image_args, tiny_image_data, tiny_text_args, tiny_vit_dir, toy_reviews, write_csv

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# The real CLI entry, killed by a real SIGKILL at an exact point rather than after a timed wait: "after"
# kills once checkpoint step N is complete, "writing" kills after the weights and optimizer of checkpoint N
# are on disk but before its train_state.json (the completion marker) is written.
KILLER = """
import os, signal, sys
import tasks
from shared.training import checkpoint
from shared.toolkit.cli import main

task, when, step = sys.argv[1], sys.argv[2], int(sys.argv[3])
save, write_state = checkpoint.CheckpointManager.save, checkpoint.TrainState.save

def save_then_die(self, accelerator, state, *objects):
    path = save(self, accelerator, state, *objects)
    if state.step == step:
        os.kill(os.getpid(), signal.SIGKILL)
    return path

def die_before_marker(self, path):
    if self.step == step:
        os.kill(os.getpid(), signal.SIGKILL)
    write_state(self, path)

if when == "after":
    checkpoint.CheckpointManager.save = save_then_die
else:
    checkpoint.TrainState.save = die_before_marker
main(task, sys.argv[4:])
"""
# Each task: 6 optimizer steps per epoch, 8 epochs (48 steps), evaluated each epoch.
EPOCHS = ["--num_train_epochs", "8", "--eval_strategy", "epoch"]
SAVE = {"steps": ["--save_strategy", "steps", "--save_steps", "10"], "epoch": ["--save_strategy", "epoch"]}
CASES = [  # (task, how the run is killed, checkpoint step, save flags)
    ("text_classification", "after", 20, "steps"),  # mid-epoch: epoch 3, batch 2
    ("text_classification", "after", 24, "epoch"),  # end of epoch 4
    ("image_classification", "after", 20, "steps"),
    ("image_classification", "after", 24, "epoch"),
    ("image_classification", "writing", 20, "steps"),  # step_00000010 must stay the one `latest` picks
]


def _env() -> dict:
    # PYTHONPATH: the subprocess imports this checkout, whichever copy of the project pip installed
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": str(ROOT)}


def _train(task: str, args: list[str]) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tasks" / task / "train.py"), *args], cwd=ROOT, env=_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def _kill(task: str, when: str, step: int, args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", KILLER, task, when, str(step), *args], cwd=ROOT, env=_env(),
                            capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]


@pytest.fixture(scope="module")
def flags(tiny_bert_dir, tmp_path_factory):
    """task -> flags(out, *extra) of a seconds-long run on toy data that a tiny model learns."""
    data = tmp_path_factory.mktemp("kill_resume_data")
    train = write_csv(data / "train.csv", toy_reviews(96, 1))
    validation = write_csv(data / "validation.csv", toy_reviews(30, 2))
    shapes, vit = tiny_image_data(data / "shapes"), tiny_vit_dir(data / "vit")
    return {"text_classification": lambda out, *extra: tiny_text_args(tiny_bert_dir, train, validation, out,
                                                                      *EPOCHS, *extra),
            "image_classification": lambda out, *extra: tiny_image_args(vit, shapes, out, *EPOCHS, *extra)}


@pytest.fixture(scope="module")
def unbroken(flags, tmp_path_factory):
    """task -> the run folder of an uninterrupted run (no checkpoints: saving must not change training)."""
    runs = {}

    def get(task: str) -> Path:
        if task not in runs:
            out = tmp_path_factory.mktemp(f"unbroken_{task}")
            _train(task, flags[task](out, "--save_strategy", "no"))
            runs[task] = out / "run"
        return runs[task]

    return get


def _scores(run: Path) -> dict:
    """Everything results.json reports about the model (not wall times)."""
    results = json.loads((run / "results.json").read_text())
    return {k: v for k, v in results.items()
            if (k.startswith(("eval_", "last_eval_")) or k.endswith("_step")) and "per_second" not in k}


def _max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((x.float() - b[k].float()).abs().max().item() for k, x in a.items())


@pytest.mark.parametrize("task, when, step, save", CASES, ids=[f"{t}-{w}-{s}" for t, w, _, s in CASES])
def test_sigkill_then_resume_latest_matches_an_unbroken_run(flags, unbroken, tmp_path, task, when, step, save):
    out, run = tmp_path / "broken", tmp_path / "broken" / "run"
    _kill(task, when, step, flags[task](out, *SAVE[save], "--save_total_limit", "100"))
    assert not (run / "results.json").exists()
    latest = CheckpointManager(run, 100).latest()
    if when == "writing":  # the half-written checkpoint is on disk, and is not what a resume picks
        assert (run / "checkpoints" / f".tmp-step_{step:08d}" / "model.safetensors").exists()
        assert latest.name == f"step_{step - 10:08d}"
    else:
        assert latest.name == f"step_{step:08d}"
    _train(task, [*flags[task](out, *SAVE[save], "--save_total_limit", "100"), "--resume_from_checkpoint", "latest"])

    reference = unbroken(task)
    a, b = load_file(str(reference / "last" / "model.safetensors")), load_file(str(run / "last" / "model.safetensors"))
    assert _max_abs_diff(a, b) == 0.0  # bit for bit on CPU
    assert _scores(run) == _scores(reference)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # lines replayed after the checkpoint were not duplicated
    assert not list((run / "checkpoints").glob(".tmp-*"))  # the next save cleared the half-written one
