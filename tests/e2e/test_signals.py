"""Preemption: SIGTERM or Ctrl-C (SIGINT) sent to a real training process makes it finish the optimizer step,
write a complete checkpoint (even with --save_strategy no), print how to resume and exit 128 + the signal;
running the printed command ends with the same weights and scores as an unbroken run, bit for bit on CPU.
And in a two-process run, one process failing ends both with its error instead of a wait in a barrier."""
from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from tests.e2e.test_kill_resume import ROOT, _env, _max_abs_diff, _scores, _train
from tests.helpers import tiny_text_args, toy_reviews, write_csv

pytestmark = pytest.mark.slow
# 6 optimizer steps per epoch, 8 epochs (48 steps), evaluated each epoch, logged every 2 steps.
FLAGS = ["--num_train_epochs", "8", "--eval_strategy", "epoch", "--save_strategy", "no"]
TRAIN = [sys.executable, str(ROOT / "tasks" / "text_classification" / "train.py")]


@pytest.fixture(scope="module")
def flags(tiny_bert_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("signal_data")
    train = write_csv(data / "train.csv", toy_reviews(96, 1))
    validation = write_csv(data / "validation.csv", toy_reviews(30, 2))
    return lambda out: tiny_text_args(tiny_bert_dir, train, validation, out, *FLAGS)


@pytest.fixture(scope="module")
def unbroken(flags, tmp_path_factory):
    out = tmp_path_factory.mktemp("signal_unbroken")
    _train("text_classification", flags(out))
    return out / "run"


def _logged_step(run) -> int:
    lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []
    return max((json.loads(line)["step"] for line in lines if line.endswith("}")), default=0)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_checkpoints_the_step_and_the_printed_resume_matches_an_unbroken_run(flags, unbroken, tmp_path,
                                                                                      signum):
    out, run = tmp_path / "stopped", tmp_path / "stopped" / "run"
    process = subprocess.Popen([*TRAIN, *flags(out)], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while _logged_step(run) < 4 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signum)  # mid-run: a few steps logged, most of the 48 still to go
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr
    stopped = re.search(r"stopped by (\w+) after optimizer step (\d+); checkpoint (\S+)", stdout)
    assert stopped and stopped.group(1) == signum.name, stdout[-3000:]
    step = int(stopped.group(2))
    assert 4 <= step < 48 and stopped.group(3).endswith(f"step_{step:08d}")
    assert (run / "checkpoints" / f"step_{step:08d}" / "train_state.json").is_file()
    assert not (run / "results.json").exists()

    command = shlex.split(stdout.split("resume with: ")[1].splitlines()[0])
    assert command[1:3] == [TRAIN[1], "--model_name_or_path"] and command[-2] == "--resume_from_checkpoint"
    resumed = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = load_file(str(unbroken / "last" / "model.safetensors"))
    b = load_file(str(run / "last" / "model.safetensors"))
    assert _max_abs_diff(a, b) == 0.0
    assert _scores(run) == _scores(unbroken)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)



# Rank 1 of two hits a full disk while writing checkpoint step 10; rank 0 is then inside the checkpoint's barrier.
RANK_FAILS = """
import sys
import tasks
from shared.training import checkpoint
from shared.toolkit.cli import main

save = checkpoint.CheckpointManager.save

def save_or_fail(self, accelerator, state, objects=None):
    if state.step == 10 and accelerator.process_index == 1:
        raise OSError(28, "No space left on device")
    return save(self, accelerator, state, objects)

checkpoint.CheckpointManager.save = save_or_fail
main("text_classification", sys.argv[1:])
"""


def test_one_failing_process_ends_every_process_with_its_error(flags, tmp_path):
    import os
    import socket

    script = tmp_path / "rank_fails.py"
    script.write_text(RANK_FAILS)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", str(port), str(script), *flags(tmp_path / "out"), "--save_strategy", "steps",
               "--save_steps", "10"]
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env={**_env(), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                            timeout=240)  # a hang fails here instead of stalling the suite
    seconds = time.monotonic() - started
    assert result.returncode != 0 and "processes 2" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    assert "No space left on device" in result.stderr
    print(f"both processes ended {seconds:.1f} s after the launch")
    assert not os.path.exists(tmp_path / "out" / "run" / "checkpoints" / "step_00000010")
