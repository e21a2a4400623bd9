"""With 2+ GPUs: two processes over NCCL against one process with the global batch, and one FSDP launch."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.gpu.fixtures import TaskFixture
from benchmarks.gpu.jobs import ROOT, Job, launch

SCRIPT = "tasks/text_classification/train.py"
FSDP = ("--config_file", str(ROOT / "accelerate_config_fsdp.yaml"))


def jobs(fixture: TaskFixture, work: Path) -> dict[str, Job]:
    """fp32 (--mixed_precision no), so the two sides differ only by how the batch is split."""
    def flags(name: str, batch: str, *extra: str) -> list[str]:
        return ["--output_dir", str(work / "distributed" / name), "--run_name", "run", *fixture.flags,
                "--per_device_train_batch_size", batch, "--per_device_eval_batch_size", "4", "--logging_steps", "1",
                "--num_train_epochs", "2", "--mixed_precision", "no", "--save_strategy", "no", "--seed", "0", *extra]

    logs = work / "logs"
    return {
        "two": Job("two processes over NCCL", launch(SCRIPT, *flags("two", "8"), processes=2),
                   logs / "nccl-two.log"),
        "one": Job("one process, global batch", launch(SCRIPT, *flags("one", "16")), logs / "nccl-one.log"),
        "fsdp": Job("FSDP, two processes", launch(SCRIPT, *flags("fsdp", "8", "--max_train_steps", "2",
                                                                 "--eval_strategy", "end"), processes=2, launcher=FSDP),
                    logs / "fsdp.log"),
    }


def _read(run: Path) -> tuple[dict, list[dict]]:
    results = json.loads((run / "results.json").read_text())
    return results, [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def verify(made: dict[str, Job], work: Path, n_validation: int) -> list[dict]:
    rows = []
    two, one = made["two"], made["one"]
    row = {"check": "two processes over NCCL vs one process with the global batch"}
    if not (two.ok and one.ok):
        rows.append({**row, "failures": [j.describe() for j in (two, one) if not j.ok],
                     "log_tail": (two if not two.ok else one).tail()})
    else:
        (r2, h2), (r1, h1) = _read(work / "distributed" / "two" / "run"), _read(work / "distributed" / "one" / "run")
        lrs = lambda rows_: [(r["step"], r["train/lr"]) for r in rows_ if "train/lr" in r]
        counts = [r["eval/num_samples"] for r in h2 if "eval/num_samples" in r]
        failures = []
        if r2["num_processes"] != 2 or "processes 2 (MULTI_GPU)" not in two.tail(100000):
            failures.append(f"not two NCCL processes: num_processes {r2['num_processes']}")
        if not counts or any(c != n_validation for c in counts):
            failures.append(f"evaluations counted {counts} samples, expected {n_validation} each")
        if r2["global_step"] != r1["global_step"] or lrs(h2) != lrs(h1):
            failures.append("optimizer steps or learning rates differ from the one-process run")
        # Different batch splits change float summation order, so the scores agree only to within one sample.
        gap = abs(r2["eval_accuracy"] - r1["eval_accuracy"])
        if gap > 1.0 / n_validation + 1e-9:
            failures.append(f"accuracy differs by {gap:.4f}, more than one validation sample")
        rows.append({**row, "global_step": r2["global_step"], "eval_samples": counts,
                     "accuracy_two": r2["eval_accuracy"], "accuracy_one": r1["eval_accuracy"], "failures": failures})
    fsdp = made["fsdp"]
    row = {"check": "FSDP (accelerate_config_fsdp.yaml) on two GPUs, two steps"}
    if not fsdp.ok:
        rows.append({**row, "failures": [fsdp.describe()], "log_tail": fsdp.tail()})
    else:
        results, history = _read(work / "distributed" / "fsdp" / "run")
        failures = [] if "processes 2 (FSDP)" in fsdp.tail(100000) else ["the log does not show 2 FSDP processes"]
        if "runs on GPUs only" in fsdp.tail(100000):
            failures.append("the engine fell back to plain data parallel")
        rows.append({**row, "global_step": results["global_step"], "precision": results["precision"],
                     "losses": [r["train/loss"] for r in history if "train/loss" in r], "failures": failures})
    return rows
