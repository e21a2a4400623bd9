"""The GPU check's report: report.json (everything measured, log tails of failures) and report.md (tables)."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import machine_info, markdown_table


def machine() -> dict:
    import accelerate
    import torch

    info = {**machine_info(), "accelerate": accelerate.__version__, "cuda": torch.version.cuda,
            "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0}
    if info["gpus"]:
        props = torch.cuda.get_device_properties(0)
        info.update(gpu_capability=list(torch.cuda.get_device_capability(0)),
                    gpu_memory_gib=round(props.total_memory / 2 ** 30, 1))
    return info


def _status(row: dict | None) -> str:
    if row is None:
        return "not run"
    return "FAIL: " + "; ".join(row["failures"]) if row.get("failures") else "pass"


def _sections(report: dict) -> list[str]:
    m = report["machine"]
    out = [f"# GPU check{' (dry run on CPU: plumbing only, no precision asserts)' if report['dry_run'] else ''}",
           f"`{report['command']}`, {report['seconds']} s (phases: {report['phase_seconds']}). "
           f"Machine: {m.get('gpus')} x {m.get('gpu')} "
           f"(capability {m.get('gpu_capability')}, {m.get('gpu_memory_gib')} GiB), CPU {m['cpu']}, "
           f"{m['cores']} cores; torch {m['torch']} (CUDA {m['cuda']}), transformers {m['transformers']}, "
           f"accelerate {m['accelerate']}, python {m['python']}, {m['date']}.",
           f"Registered tasks: {', '.join(report['registered_tasks'])}; checked: {', '.join(report['checked_tasks'])}."]
    rows = [{**r, "status": _status(r)} for r in report["trainings"] + report["failed_setup"]]
    out += ["## Trainings through `accelerate launch` (loss falls, evaluation runs, best/ loads in its pipeline)",
            markdown_table(rows, ["task", "precision_asked", "precision", "model", "steps", "first_loss", "last_loss",
                                  "evaluations", "main_metric", "value", "pipeline", "seconds", "status"])]
    resume = report["resume"]
    out += ["## Kill and resume", _status(resume)]
    if resume and "checkpoints" in resume:
        out += [f"{resume['precision']}, killed after checkpoint {resume['killed_after_step']}; optimizer steps "
                f"skipped by the scaler: {resume['skipped_steps']}. Weights: resumed vs unbroken max |diff| "
                f"{resume['weight_diff_resumed_vs_unbroken']:.3g}, two unbroken runs "
                f"{resume['weight_noise_two_unbroken_runs']:.3g}, allowed {resume['allowed']:.3g}. "
                f"Tolerance: {resume['tolerance']}",
                markdown_table([{"step": s, **{f"unbroken {k}": v for k, v in c["unbroken"].items()},
                                 **{f"resumed {k}": v for k, v in c["resumed"].items()}}
                                for s, c in resume["checkpoints"].items()],
                               ["step"] + [f"{side} {k}" for side in ("unbroken", "resumed")
                                           for k in ("scale", "growth_tracker", "scheduler_steps")])]
    multi = report["multi_gpu"]
    out += ["## Two GPUs: NCCL and FSDP", multi if isinstance(multi, str) else markdown_table(
        [{**r, "status": _status(r)} for r in multi], ["check", "global_step", "status"])]
    peak = report["peak"]
    out += ["## Speed and memory against transformers.Trainer (each side alone on the GPU)",
            f"MFU against {peak['bf16_tflops']} TFLOP/s bf16 ({peak['source']}); an 8192^3 bf16 matmul ran at "
            f"{peak['matmul_measured_now']} TFLOP/s in this run. Text FLOPs: 6 x matmul parameters x trained tokens "
            "+ attention 12 x layers x hidden x length^2, padded tokens included (what the GPU executed).",
            markdown_table([{**r, "status": _status(r)} for r in report["speed"]],
                           ["task", "side", "precision", "steps", "samples_per_s", "samples_per_s_vs_trainer",
                            "max_memory_allocated_mb", "max_memory_allocated_mb_vs_trainer", "tflops_per_s", "mfu",
                            "train_runtime_s", "status"])]
    return out


def failures(report: dict) -> list[str]:
    rows = report["trainings"] + report["failed_setup"] + report["speed"] + [report["resume"] or {}]
    rows += report["multi_gpu"] if isinstance(report["multi_gpu"], list) else []
    where = lambda r: " ".join(str(p) for p in (r.get("task") or r.get("check"), r.get("precision_asked") or
                                                 r.get("side")) if p)
    found = [f"{where(r)}: {f}" for r in rows for f in r.get("failures", [])]
    return found + ([] if report["resume"] is not None else ["kill and resume: not run (no text task)"])


def write_report(report: dict, outdir: Path) -> bool:
    """Write both files; True when anything failed (each failure is printed too)."""
    outdir.mkdir(parents=True, exist_ok=True)
    found = failures(report)
    report["failures"] = found
    (outdir / "report.json").write_text(json.dumps(report, indent=1, default=str))
    sections = _sections(report) + ["## Failures", "\n".join(f"- {f}" for f in found) or "none"]
    (outdir / "report.md").write_text("\n\n".join(sections) + "\n")
    print("\n".join(found) if found else "every check passed", flush=True)
    print(f"report: {outdir / 'report.md'}, {outdir / 'report.json'}", flush=True)
    return bool(found)
