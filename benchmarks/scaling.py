"""Training throughput of one task with 1 and 2 processes, and 0/1/2 dataloader workers.

    python -m benchmarks scaling [--task text_classification]

Shows what the input pipeline costs (workers) and what data parallelism gives on this machine (two gloo
processes over the same cores share them: on a 2-core CPU it measures overhead, on GPUs it scales).
"""
from __future__ import annotations

import json
import socket
import sys
import tempfile
from pathlib import Path

from benchmarks.common import run_measured, write_merged_rows
from benchmarks.suite import pairs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(processes: int) -> list[str]:
    if processes == 1:
        return [sys.executable]
    # --multi_gpu with no GPU gives real gloo processes on CPU (plain --cpu --num_processes runs one)
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--main_process_port", str(_free_port())]


def run_scaling(task: str) -> Path:
    pair = pairs()[task]
    work = Path(tempfile.mkdtemp(prefix="bench_scaling_"))
    rows = []
    for processes, workers in [(1, 0), (1, 1), (1, 2), (2, 0)]:
        out = work / f"p{processes}_w{workers}"
        command = [*_launch(processes), f"tasks/{task}/train.py", "--config", pair.recipe, *pair.data_flags,
                   *pair.quick_flags, "--dataloader_num_workers", str(workers), "--eval_strategy", "end",
                   "--save_strategy", "no", "--output_dir", str(out), "--run_name", "run"]
        measured = run_measured(command, work / f"{out.name}.log")
        results = json.loads((out / "run" / "results.json").read_text())
        rows.append({"task": task, "processes": results["num_processes"], "dataloader_workers": workers,
                     "train_step_samples_per_s": results["train_step_samples_per_second"],
                     "data_wait_fraction": results.get("train_data_wait_fraction"),
                     "eval_samples_per_s": results["eval_samples_per_second"],
                     f"{pair.metric}": round(results[f"last_eval_{pair.metric}"], 4), **measured})
    return write_merged_rows(f"scaling-{task}", rows, f"python -m benchmarks scaling --task {task}", list(rows[0]))
