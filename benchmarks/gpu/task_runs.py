"""Per task: short `accelerate launch` trainings at each precision, then what each run must show."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from benchmarks.gpu.fixtures import TaskFixture
from benchmarks.gpu.jobs import Job, launch


@dataclass
class TaskRun:
    task: str
    precision: str  # what the command asked for: fp16, bf16, auto (no in a dry run)
    expected: str  # what results.json must report
    fixture: TaskFixture
    job: Job
    out: Path

    @property
    def run_dir(self) -> Path:
        return self.out / "run"


def expected_auto(dry_run: bool) -> str:
    """What --mixed_precision auto must pick, from the hardware alone: bf16 from Ampere (compute capability 8)
    on, fp16 before it. (The dry run on a CPU checks no precision.)"""
    import torch

    if dry_run or not torch.cuda.is_available():
        return "(not checked)"
    return "bf16" if torch.cuda.get_device_capability(0)[0] >= 8 else "fp16"


def task_runs(task: str, fixture: TaskFixture, work: Path, precisions: list[str], dry_run: bool) -> list[TaskRun]:
    runs = []
    for precision in precisions:
        out = work / "runs" / f"{task}-{precision}"
        # Defaults first: a fixture's own flags (and the precision) override them.
        flags = ["--output_dir", str(out), "--run_name", "run", "--save_strategy", "no", "--seed", "0",
                 "--eval_strategy", "epoch", *fixture.flags, "--mixed_precision", precision]
        if precision == "auto":  # only the precision choice is under test: a few steps are enough
            flags += ["--max_train_steps", "4", "--eval_strategy", "end"]
        job = Job(f"{task} {precision}", launch(f"tasks/{task}/train.py", *flags), work / "logs" /
                  f"{task}-{precision}.log")
        expected = expected_auto(dry_run) if precision == "auto" else precision
        runs.append(TaskRun(task, precision, expected, fixture, job, out))
    return runs


def _history(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _rounded(value):
    return round(value, 4) if isinstance(value, float) else value


def verify(run: TaskRun, dry_run: bool, probe: bool) -> dict:
    """The run's facts and its failures (an empty list: passed)."""
    row = {"task": run.task, "precision_asked": run.precision, "model": run.fixture.model,
           "seconds": round(run.job.seconds, 1), "log": str(run.job.log)}
    if not run.job.ok:
        return {**row, "failures": [run.job.describe()], "log_tail": run.job.tail()}
    failures = []
    results = json.loads((run.run_dir / "results.json").read_text())
    history = _history(run.run_dir)
    losses = [r["train/loss"] for r in history if "train/loss" in r]
    evals = [r for r in history if any(k.startswith("eval/") for k in r)]
    main = results.get("main_metric")
    row.update(precision=results.get("precision"), steps=results.get("global_step"),
               first_loss=round(losses[0], 4) if losses else None, last_loss=round(losses[-1], 4) if losses else None,
               evaluations=len(evals), main_metric=main, value=_rounded(results.get(f"eval_{main}")))
    device = next((line.split("device ")[1].split(",")[0] for line in run.job.tail(100000).splitlines()
                   if "processes 1 (" in line and "device " in line), None)
    row["device"] = device
    if not dry_run and not (device or "").startswith("cuda"):
        failures.append(f"ran on {device}, not on the GPU")
    if run.expected != "(not checked)" and results.get("precision") != run.expected:
        failures.append(f"results.json precision {results.get('precision')!r}, expected {run.expected!r}")
    if not losses or not all(math.isfinite(x) for x in losses):
        failures.append(f"train losses missing or not finite: {losses}")
    elif run.precision != "auto" and not (len(losses) >= 2 and sum(losses[-2:]) / 2 < losses[0]):
        failures.append(f"loss did not fall: {[round(x, 4) for x in losses]}")
    if not evals or results.get(f"eval_{main}") is None:
        failures.append(f"no evaluation recorded (main metric {main!r})")
    if probe and run.precision != "auto":
        row["pipeline"] = _probe(run, dry_run, failures)
    return {**row, "failures": failures}


def _probe(run: TaskRun, dry_run: bool, failures: list[str]) -> str:
    """Load best/ with transformers.pipeline under the task's tag, on the GPU, and run it once."""
    import torch
    from transformers import pipeline

    from shared.task import get_task

    tag = get_task(run.task).pipeline_tag
    try:
        pipe = pipeline(tag, model=str(run.run_dir / "best"), device=-1 if dry_run else 0)
        where = next(pipe.model.parameters()).device.type
        if not dry_run and where != "cuda":
            failures.append(f"pipeline({tag!r}) put the model on {where}")
        said = run.fixture.probe(pipe)
        del pipe
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return f"{tag} on {where}: {said}"
    except Exception as err:  # noqa: BLE001  (any failure of the export contract is a finding to report)
        failures.append(f"pipeline({tag!r}) on best/ failed: {type(err).__name__}: {str(err)[:300]}")
        return f"{tag}: failed"
