"""Shared benchmark plumbing: measured subprocess runs, machine facts, and result files."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


def machine_info() -> dict:
    """What a reader needs to compare numbers: CPU, its bf16 support, cores, library versions."""
    import torch
    import transformers

    from shared.toolkit.runtime import cpu_has_native_bf16

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": cpu_has_native_bf16(), "cores": len(os.sched_getaffinity(0)),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def machine_tag() -> str:
    """Short name of this machine in result file names: host and CPU capability (e.g. vm-avx512)."""
    import torch

    return f"{platform.node() or 'host'}-{torch.backends.cpu.get_cpu_capability().lower()}"


def run_measured(command: list[str], log_path: Path, env: dict | None = None) -> dict:
    """Run `command` to completion; return wall seconds and the peak RSS of that process tree in MB."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # PYTHONPATH: scripts import `benchmarks` (not an installed package) and this checkout's code
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT),
                **(env or {})}
    started = time.perf_counter()
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)  # rusage of this child alone, not earlier ones
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {code}; see {log_path}")
    return {"wall_seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def python_command(script: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / script), *args]


def write_result(task: str, result: dict) -> Path:
    """benchmarks/results/<date>-<host>-<task>.json"""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{time.strftime('%Y%m%d')}-{platform.node() or 'host'}-{task}.json"
    path.write_text(json.dumps(result, indent=1))
    return path


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if ours and theirs else None


def _cell(value) -> str:
    if isinstance(value, dict):  # e.g. other_metrics: "f1 0.8443, exact_match 27.2"
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |\n" for row in rows)


def write_merged_rows(kind: str, rows: list[dict], command: str,
                      columns: list[str] | Callable[[list[dict]], list[str]], **extra) -> Path:
    """results/<date>-<machine>-<kind>.json and .md: this run's rows replace earlier rows of the same
    tasks from today, every row keeps the command that measured it, and the .md lists those commands.
    `columns` may be a function of the merged rows (to show a column only where some row has it)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{time.strftime('%Y%m%d')}-{machine_tag()}-{kind}.json"
    for row in rows:
        row.setdefault("command", command)
    earlier = json.loads(path.read_text()) if path.exists() else {"rows": []}
    ran = {row["task"] for row in rows}
    rows = [{"command": earlier.get("command", ""), **row} for row in earlier["rows"] if row["task"] not in ran] + rows
    table = markdown_table(rows, columns(rows) if callable(columns) else columns)
    path.write_text(json.dumps({"machine": machine_info(), "rows": rows, "table": table, **extra}, indent=1))
    commands = "\n".join(f"`{c}`" for c in dict.fromkeys(row["command"] for row in rows))
    path.with_suffix(".md").write_text(f"{commands}\n\n{table}")
    print(table, flush=True)
    return path
