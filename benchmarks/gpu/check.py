"""The prepared CUDA check: every task's training at fp16/bf16/auto, kill and resume, multi-GPU, speed vs Trainer.

    bash benchmarks/gpu/run.sh OUTDIR [--dry-run] [--budget_s 360] [--peak_tflops N] [--tasks a b ...]

Writes OUTDIR/report.json and OUTDIR/report.md. Exit 0: every check that ran passed; 1: a check failed or
did not fit in the time budget; 3: no CUDA GPU (run.sh says so in one line before anything starts).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks.gpu.fixtures import TEXT_VALIDATION_ROWS

EXIT_FAILED, EXIT_NO_GPU = 1, 3


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir")
    parser.add_argument("--dry-run", action="store_true", help="CPU plumbing check: one task, fp32, tiny speed pair")
    parser.add_argument("--budget_s", type=float, default=360.0, help="no job starts after this many seconds")
    parser.add_argument("--concurrency", type=int, default=0, help="jobs side by side (default: 6 on GPU, 2 dry)")
    parser.add_argument("--peak_tflops", type=float, default=None, help="the GPU's dense bf16 peak, for MFU")
    parser.add_argument("--tasks", nargs="+", default=None, help="default: every registered task (dry: one)")
    parser.add_argument("--precisions", nargs="+", default=None, help="default: fp16 bf16 auto (dry: no)")
    parser.add_argument("--speed_rows", type=int, default=0, help="text speed pair rows (default 32000, dry 64)")
    parser.add_argument("--speed_batch", type=int, default=0, help="text speed pair batch (default 128, dry 16)")
    parser.add_argument("--keep_work", action="store_true", help="keep the temporary run folders")
    return parser.parse_args(argv)


def _fixtures(names: list[str], work: Path, dry_run: bool, failures: list[dict]) -> dict:
    from benchmarks.gpu import fixtures

    built = {}
    for name in names:
        builder = fixtures.BUILDERS.get(name)
        if builder is None:
            failures.append({"task": name, "failures": [f"task {name!r} is registered but has no GPU check: add "
                                                        "a builder to benchmarks/gpu/fixtures.py"]})
            continue
        try:
            kwargs = {"packaged": False} if dry_run and name == "image_classification" else {}
            built[name] = builder(work / "fixtures" / name, **kwargs)
        except Exception as err:  # noqa: BLE001  (one task's broken fixture must not hide the others' results)
            failures.append({"task": name, "failures": [f"building its tiny model or data failed: {err!r}"],
                             "log_tail": traceback.format_exc()[-1500:]})
    return built


def _convert_mobilenet(built: dict, failures: list[dict]) -> None:
    """Convert the carried wheel once, before parallel runs read the cache; without it, no image run."""
    from shared.toolkit.models import resolve_model

    try:
        resolve_model("mobilenetv2")
    except Exception as err:  # noqa: BLE001  (the other tasks still run)
        del built["image_classification"]
        failures.append({"task": "image_classification", "failures": [
            f"packaged MobileNetV2 unavailable ({err!r}); was benchmarks/gpu/prepare.sh run and its wheels carried?"]})


def _run_phases(runner, deadline: float, dry: bool, trainings: list, speed_jobs: list, multi: list) -> dict:
    """Trainings side by side, then each speed run alone, then the multi-GPU launches. Each phase has its own
    deadline (60% of what is left, then what is left minus 60 s for the multi-GPU launches, then the rest), so
    a slow first phase leaves the later ones time to run. Returns each phase's seconds."""
    seconds, clock = {}, time.monotonic()
    runner.deadline = clock + 0.6 * (deadline - clock)
    runner.run(trainings)
    seconds["trainings"], clock = round(time.monotonic() - clock, 1), time.monotonic()
    runner.deadline = deadline - (60 if multi else 0)
    (runner.run if dry else runner.run_alone)(speed_jobs)  # a dry run's timings mean nothing: side by side
    seconds["speed"], clock = round(time.monotonic() - clock, 1), time.monotonic()
    runner.deadline = deadline
    runner.run_alone(multi)
    seconds["multi_gpu"] = round(time.monotonic() - clock, 1)
    return seconds


def run(args: argparse.Namespace) -> int:
    import torch

    from benchmarks.gpu import distributed, resume, speed
    from benchmarks.gpu.jobs import Runner, base_env
    from benchmarks.gpu.report import machine, write_report
    from benchmarks.gpu.task_runs import task_runs, verify

    started, dry = time.monotonic(), args.dry_run
    gpus = 0 if dry else torch.cuda.device_count()
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    env = base_env(work / "cache", dry)
    os.environ.update({k: env[k] for k in ("FINETUNE_SUITE_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                                           "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "HF_HOME")})
    import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
    from shared.task import list_tasks
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the report is the output; a bar per saved fixture hides it

    registered = list_tasks()
    names = args.tasks or (["text_classification"] if dry else registered)
    report = {"machine": machine(), "dry_run": dry, "registered_tasks": registered, "checked_tasks": names,
              "command": " ".join(["bash benchmarks/gpu/run.sh", *sys.argv[1:]]), "failed_setup": []}
    built = _fixtures(names, work, dry, report["failed_setup"])
    if "image_classification" in built and not dry:
        _convert_mobilenet(built, report["failed_setup"])
    precisions = args.precisions or (["no"] if dry else ["fp16", "bf16", "auto"])
    runs = [r for name, fixture in built.items() for r in task_runs(name, fixture, work, precisions, dry)]
    text = built.get("text_classification")
    resume_jobs = resume.jobs(text, work, "no" if dry else "fp16", noise_run=not dry) if text else {}
    pairs = speed.pairs(work, dry, args.speed_rows or (64 if dry else 32000), args.speed_batch or (16 if dry else 128))
    multi = distributed.jobs(text, work) if text and gpus >= 2 else {}
    runner = Runner(env, 0.0, gpus, args.concurrency or (2 if dry else 6))
    report["phase_seconds"] = _run_phases(runner, started + args.budget_s, dry,
                                          [r.job for r in runs] + list(resume_jobs.values()),
                                          [job for pair in pairs for job in (pair.ours, pair.trainer)],
                                          list(multi.values()))

    report["trainings"] = [verify(r, dry, probe=True) for r in runs]
    report["resume"] = resume.verify(resume_jobs, work, "no" if dry else "fp16") if text else None
    peak, source = speed.peak_tflops(report["machine"]["gpu"] or "", args.peak_tflops)
    report["peak"] = {"bf16_tflops": peak, "source": source, "matmul_measured_now": speed.measured_matmul_tflops()}
    report["speed"] = [row for pair in pairs for row in speed.verify(pair, work, peak)]
    report["multi_gpu"] = (distributed.verify(multi, work, TEXT_VALIDATION_ROWS) if multi else
                           f"did not run: this machine has {gpus} GPU(s); the NCCL and FSDP checks need 2")
    report["seconds"] = round(time.monotonic() - started, 1)
    failed = write_report(report, Path(args.outdir))
    if args.keep_work:
        print(f"run folders kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return EXIT_FAILED if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA GPU on this machine: the GPU check did not run (exit 3; --dry-run checks its plumbing on a CPU)")
        return EXIT_NO_GPU
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
