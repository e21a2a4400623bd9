"""metrics.jsonl (one line per log or eval), results.json, and accelerate trackers."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from accelerate import Accelerator


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLogger:
    """Writes on the main process only; every line carries the global optimizer step."""

    def __init__(self, accelerator: Accelerator, run_dir: Path, resume_step: int | None = None):
        self.accelerator = accelerator
        self.path = run_dir / "metrics.jsonl"
        self.started = time.perf_counter()
        if accelerator.is_main_process and resume_step is not None and self.path.exists():
            self._truncate_after(resume_step)

    def _truncate_after(self, step: int) -> None:
        """A resumed run replays the steps after its checkpoint: drop their old lines first."""
        kept = [json.dumps(record) for record in self.history() if record.get("step", step + 1) <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, metrics: dict, step: int, epoch: float) -> None:
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}
        if self.accelerator.is_main_process:
            # time_s: seconds since this process began the run; time-to-target figures read it
            record = {"step": step, "epoch": round(epoch, 4), "time_s": round(time.perf_counter() - self.started, 2),
                      **{k: _clean(v) for k, v in scalars.items()}}
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        if self.accelerator.trackers:
            self.accelerator.log(scalars, step=step)

    def history(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [record for record in map(_record, self.path.read_text(errors="replace").splitlines()) if record]


def _record(line: str) -> dict | None:
    """One metrics.jsonl line, or None for a torn one (what a crash or a full disk leaves at the end)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def write_results(run_dir: Path, results: dict, name: str = "results.json") -> Path:
    path = run_dir / name
    path.write_text(json.dumps(results, indent=1, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))
    return path


def plot_run(run_dir: Path, metrics: dict, labels: list[str] | None) -> list[Path]:
    """overview.png (every curve of the run, the test result marked), one figure per curve, and
    per-class figures for whichever per-class metrics exist."""
    from shared.evaluation import plots

    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    overview = plots.plot_overview(run_dir / "metrics.jsonl", out / "overview.png")
    written = ([overview] if overview else []) + plots.plot_training_curves(run_dir / "metrics.jsonl", out)
    return written + plot_metric_figures(metrics, labels, out)


def plot_metric_figures(metrics: dict, labels: list[str] | None, out: Path) -> list[Path]:
    """Confusion matrix and per-class bars of one evaluation's metrics, for whichever of them exist."""
    from shared.evaluation import plots

    written, names = [], labels or []
    if metrics.get("confusion_matrix") is not None:
        size = len(metrics["confusion_matrix"])
        names_cm = names if len(names) == size else [str(i) for i in range(size)]
        written.append(plots.plot_confusion_matrix(metrics["confusion_matrix"], names_cm, out / "confusion_matrix.png"))
    for key in ("per_class_f1", "per_class_iou", "per_class_ap"):
        values = metrics.get(key)
        if values is not None:
            names_k = names if len(names) == len(values) else [str(i) for i in range(len(values))]
            values = [0.0 if v is None else float(v) for v in values]
            written.append(plots.plot_per_class_bars(values, names_k, key.replace("_", " "), out / f"{key}.png"))
    return written
