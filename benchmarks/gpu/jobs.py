"""Subprocess jobs of the GPU check: launched side by side, one GPU each, inside one time budget."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Job:
    """One command; `after` runs in the same worker once this one ended with `expect_code`."""
    name: str
    command: list[str]
    log: Path
    expect_code: int = 0
    timeout_s: float = 300.0
    env: dict = field(default_factory=dict)
    after: "Job | None" = None
    code: int | None = None  # None: not run (time budget spent, or the job before it failed)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.code == self.expect_code

    def describe(self) -> str:
        if self.code is None:
            return f"{self.name}: not run"
        return f"{self.name}: exit {self.code} (expected {self.expect_code}) after {self.seconds:.0f} s; log {self.log}"

    def tail(self, chars: int = 1500) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def base_env(cache: Path, dry_run: bool) -> dict:
    """Offline, this checkout first on the path (after the carried wheels), one shared backbone cache, and an
    empty HF_HOME: no accelerate default config or hub login left on the machine changes the launches."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": path, "FINETUNE_SUITE_CACHE": str(cache),
           "PYTHONUNBUFFERED": "1", "HF_HOME": str(cache / "hf_home")}
    if dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(script: str, *args: str, processes: int = 1, launcher: tuple[str, ...] = ()) -> list[str]:
    """`accelerate launch` of a task script. The process count is always given: without a config file,
    accelerate would start one process per visible GPU."""
    spread = ["--multi_gpu", "--main_process_port", str(free_port())] if processes > 1 and not launcher else []
    return [sys.executable, "-m", "accelerate.commands.launch", *launcher, *spread, "--num_processes",
            str(processes), "--num_machines", "1", "--dynamo_backend", "no", str(ROOT / script), *args]


class Runner:
    """Runs jobs `concurrency` at a time, giving each worker its own GPU in turn, until the deadline."""

    def __init__(self, env: dict, deadline: float, gpus: int, concurrency: int):
        self.env, self.deadline, self.gpus, self.concurrency = env, deadline, gpus, concurrency
        self._slot = threading.local()
        self._counter = 0
        self._lock = threading.Lock()

    def _gpu(self) -> str | None:
        if not self.gpus:
            return None
        if not hasattr(self._slot, "gpu"):
            with self._lock:
                self._slot.gpu, self._counter = str(self._counter % self.gpus), self._counter + 1
        return self._slot.gpu

    def _run_one(self, job: Job, env: dict) -> None:
        left = self.deadline - time.monotonic()
        if left < 10:
            return  # job.code stays None: the report says it did not run
        job.log.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with job.log.open("w") as log:
            try:
                job.code = subprocess.run(job.command, cwd=ROOT, env={**env, **job.env}, stdout=log,
                                          stderr=subprocess.STDOUT, timeout=min(job.timeout_s, left)).returncode
            except subprocess.TimeoutExpired:
                job.code = 124
                log.write(f"\n[gpu check] killed after {min(job.timeout_s, left):.0f} s\n")
        job.seconds = time.monotonic() - started

    def _chain(self, job: Job | None, all_gpus: bool) -> None:
        gpu = None if all_gpus else self._gpu()
        env = dict(self.env)
        if gpu is not None:
            # Side by side, each job gets its share of the cores: torch's default of one thread per core in
            # every process would oversubscribe them (the CPU engine path shares cores itself).
            threads = max(1, (os.cpu_count() or 1) // max(1, self.concurrency))
            env.update(CUDA_VISIBLE_DEVICES=gpu, OMP_NUM_THREADS=str(threads))
        while job is not None:
            self._run_one(job, env)
            job = job.after if job.ok else None

    def run(self, jobs: list[Job]) -> None:
        """One GPU per job, side by side (the tiny runs leave the GPU mostly idle)."""
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            for future in [pool.submit(self._chain, job, False) for job in jobs]:
                future.result()

    def run_alone(self, jobs: list[Job]) -> None:
        """One after another with every GPU visible: timings, and the multi-GPU launches."""
        for job in jobs:
            self._chain(job, True)
