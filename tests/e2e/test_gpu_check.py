"""The prepared CUDA check (benchmarks/gpu): its one-line exit without a GPU, its CPU dry run, its FLOP formula."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benchmarks" / "gpu" / "run.sh"


def _run(out: Path, *flags: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(["bash", str(RUN), str(out), *flags], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_without_cuda_it_exits_at_once_with_one_line(tmp_path):
    result = _run(tmp_path / "out", timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.strip().splitlines() == [
        "no CUDA GPU on this machine: the GPU check did not run (exit 3; --dry-run checks its plumbing on a CPU)"]
    assert not (tmp_path / "out" / "report.json").exists()


def test_every_registered_task_has_a_gpu_check():
    from benchmarks.gpu.fixtures import BUILDERS
    from shared.task import list_tasks

    assert len(list_tasks()) >= 6 and set(list_tasks()) <= set(BUILDERS)


def test_text_flops_formula_matches_torch_flop_counter():
    """The MFU numerator: 6 x matmul parameters x tokens + 12 x layers x hidden x length^2, against what
    torch counts for one forward and backward of a MiniLM-shaped BERT (the pooler and head add the rest)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertConfig, BertForSequenceClassification

    from benchmarks.gpu.speed import text_flops

    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, num_labels=3, attn_implementation="eager")
    model = BertForSequenceClassification(config)
    batch, length = 2, 64
    ids = torch.randint(0, 30522, (batch, length))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=torch.tensor([0, 1])).loss.backward()
    counted = counter.get_total_flops()
    assert text_flops(batch * length, batch * length * length) == pytest.approx(counted, rel=0.02)


@pytest.mark.slow
def test_dry_run_on_cpu_writes_both_reports(tmp_path):
    result = _run(tmp_path / "out", "--dry-run", timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["failures"] == [] and report["dry_run"] is True
    [training] = report["trainings"]
    assert training["task"] == "text_classification" and training["precision"] == "no"
    assert training["last_loss"] < training["first_loss"] and training["evaluations"] >= 1
    assert training["pipeline"].startswith("text-classification on cpu")
    resume = report["resume"]
    assert resume["weight_diff_resumed_vs_unbroken"] == 0.0  # bit for bit on a CPU
    assert set(resume["checkpoints"]) == {"20", "30", "40", "50", "60"}
    assert all(c["resumed"] == c["unbroken"] and "scheduler_steps" in c["resumed"]
               for c in resume["checkpoints"].values())
    ours, trainer = report["speed"]
    assert (ours["side"], trainer["side"]) == ("ours", "transformers.Trainer")
    assert ours["train_tokens"] > 0 and trainer["train_tokens"] > 0 and ours["samples_per_s"] > 0
    assert report["multi_gpu"].startswith("did not run")
    markdown = (tmp_path / "out" / "report.md").read_text()
    for heading in ("## Trainings", "## Kill and resume", "## Two GPUs", "## Speed and memory", "## Failures"):
        assert heading in markdown
