"""Kill and resume on the GPU with fp16: GradScaler state and scheduler restored, weights within run-to-run noise."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from benchmarks.gpu.fixtures import TaskFixture
from benchmarks.gpu.jobs import ROOT, Job, launch

KILL_AT, SAVE_EVERY = 20, 10  # 15 steps per epoch: the kill falls mid-epoch, so the data position is restored too
TOLERANCE = (
    "CUDA kernels are not bitwise reproducible by default (atomics in backward passes, cuBLAS reduction order), "
    "and Adam's normalised steps carry a tiny gradient difference into a weight difference of up to the "
    "learning rate per step. So the run-to-run noise is measured: a second unbroken run with the same seed. "
    "The resumed run must differ from the first unbroken run by at most 3x that noise (floor 1e-6). "
    "The GradScaler (scale, growth tracker) and the scheduler's step count are compared exactly: they are "
    "powers of two and integers.")


def jobs(fixture: TaskFixture, work: Path, precision: str, noise_run: bool = True) -> dict[str, Job]:
    """Two unbroken runs (the second measures the noise floor; a dry run on a CPU, bit for bit there, skips it),
    and a run killed after checkpoint 20 that resumes from `latest`."""
    made = {}
    for name in ("unbroken_a", *(["unbroken_b"] if noise_run else []), "broken"):
        flags = ["--output_dir", str(work / "resume" / name), "--run_name", "run", *fixture.flags,
                 "--mixed_precision", precision, "--seed", "0", "--eval_strategy", "epoch", "--save_strategy",
                 "steps", "--save_steps", str(SAVE_EVERY), "--save_total_limit", "100"]
        log = work / "logs" / f"resume-{name}.log"
        if name != "broken":
            made[name] = Job(f"resume {name}", launch("tasks/text_classification/train.py", *flags), log)
            continue
        resumed = Job("resume: resumed run", launch("tasks/text_classification/train.py", *flags,
                                                    "--resume_from_checkpoint", "latest"),
                      work / "logs" / "resume-resumed.log")
        made[name] = Job("resume: killed run", [sys.executable, str(ROOT / "benchmarks" / "gpu" / "killer.py"),
                                                "text_classification", str(KILL_AT), *flags], log,
                         expect_code=-9, after=resumed)  # SIGKILL
    return made


def _counters(checkpoint: Path) -> dict:
    """Scaler scale and growth tracker (fp16 only), and the scheduler's count of steps taken. The scheduler
    state is read from objects.json (JSON beside safetensors) or, in older checkpoints, accelerate's pickles."""
    found, states = {}, []
    if (checkpoint / "scaler.pt").exists():
        states.append(torch.load(checkpoint / "scaler.pt", weights_only=True))
    if (checkpoint / "objects.json").exists():
        states += [v for v in json.loads((checkpoint / "objects.json").read_text()).values() if isinstance(v, dict)]
    states += [torch.load(p, weights_only=True) for p in sorted(checkpoint.glob("custom_checkpoint_*.pkl"))]
    for state in states:
        if isinstance(state, dict) and "_growth_tracker" in state:
            found.update(scale=float(state["scale"]), growth_tracker=int(state["_growth_tracker"]))
        elif isinstance(state, dict) and "last_epoch" in state:
            found["scheduler_steps"] = int(state["last_epoch"])
    return found


def _max_diff(a: Path, b: Path) -> float:
    x, y = load_file(str(a / "last" / "model.safetensors")), load_file(str(b / "last" / "model.safetensors"))
    assert x.keys() == y.keys()
    return max((x[k].float() - y[k].float()).abs().max().item() for k in x)


def verify(made: dict[str, Job], work: Path, precision: str) -> dict:
    row = {"task": "text_classification", "precision": precision, "killed_after_step": KILL_AT,
           "tolerance": TOLERANCE}
    chain = [*made.values(), made["broken"].after]
    row["seconds"] = {job.name: round(job.seconds, 1) for job in chain}
    failures = [job.describe() for job in chain if not job.ok]
    if failures:
        return {**row, "failures": failures, "log_tail": next(j.tail() for j in chain if not j.ok)}
    runs = {name: work / "resume" / name / "run" for name in made}
    steps = sorted(int(p.name.split("_")[1]) for p in (runs["unbroken_a"] / "checkpoints").glob("step_*"))
    counters = {name: {s: _counters(run / "checkpoints" / f"step_{s:08d}") for s in steps if s >= KILL_AT}
                for name, run in runs.items()}
    row["checkpoints"] = {str(s): {"unbroken": counters["unbroken_a"][s], "resumed": counters["broken"][s]}
                          for s in counters["unbroken_a"]}
    if counters["broken"] != counters["unbroken_a"]:
        failures.append("scaler or scheduler state after the resume differs from the unbroken run's")
    if precision == "fp16" and not all("scale" in c for c in counters["broken"].values()):
        failures.append("fp16 checkpoints hold no GradScaler state (scaler.pt)")
    last = max(counters["unbroken_a"])
    skipped = last - counters["unbroken_a"][last].get("scheduler_steps", last)
    row["skipped_steps"] = skipped  # optimizer steps fp16 overflow skipped; the scheduler must not count them
    for step, seen in counters["broken"].items():
        # No growth within 2000 steps, so each skip halved the initial scale 2**16 once: the skips the scaler
        # saw must be exactly the steps the scheduler did not take.
        if "scale" in seen and step - seen.get("scheduler_steps", -1) != round(math.log2(2 ** 16 / seen["scale"])):
            failures.append(f"step {step}: scheduler took {seen.get('scheduler_steps')} steps but the scaler "
                            f"(scale {seen['scale']:g}) skipped {round(math.log2(2 ** 16 / seen['scale']))}")
    noise = _max_diff(runs["unbroken_a"], runs["unbroken_b"]) if "unbroken_b" in runs else 0.0
    resumed = _max_diff(runs["unbroken_a"], runs["broken"])
    allowed = max(3 * noise, 1e-6)
    row.update(weight_noise_two_unbroken_runs=noise, weight_diff_resumed_vs_unbroken=resumed, allowed=allowed)
    if resumed > allowed:
        failures.append(f"resumed weights differ by {resumed:.3g}, more than {allowed:.3g} (3x the noise)")
    scores = [json.loads((run / "results.json").read_text()) for run in runs.values()]
    row["eval_accuracy"] = {name: s.get("eval_accuracy") for name, s in zip(runs, scores)}
    return {**row, "failures": failures}
