"""Load the project's local evaluate metric modules and shape their results for logging."""
from __future__ import annotations

import math
import numbers
import uuid
from pathlib import Path
from typing import Any

METRICS_DIR = Path(__file__).resolve().parent / "metrics"


def available_metrics() -> list[str]:
    """Names of the local metric modules: folders of METRICS_DIR holding `<name>/<name>.py`."""
    if not METRICS_DIR.is_dir():
        return []
    return sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())


def load_metric(name: str) -> Any:
    """Load the local metric module `name` (e.g. "classification") as an `evaluate.EvaluationModule`.

    Offline by construction: the path is local, so the hub is never asked. Results stay in memory
    and each call gets its own experiment id, so two metrics computed at once never share cache files.
    """
    known = available_metrics()
    if name not in known:
        raise ValueError(f"unknown metric {name!r}; local metrics in {METRICS_DIR}: {known}")
    import evaluate  # deferred: importing evaluate (and datasets) costs seconds

    return evaluate.load(str(METRICS_DIR / name), keep_in_memory=True, experiment_id=uuid.uuid4().hex)


def _as_scalar(value: Any) -> float | None:
    """The value as a python float if it is a real number (python, numpy or 0-d tensor), else None."""
    if isinstance(value, (str, bytes)) or value is None:
        return None
    if isinstance(value, numbers.Real):  # int, float, bool, numpy integer/floating scalars
        return float(value)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # 0-d numpy array or torch tensor
        item = value.item()
        return float(item) if isinstance(item, numbers.Real) else None
    return None


def split_scalars(metrics: dict) -> tuple[dict, dict]:
    """Split metric results into (scalars as python floats, everything else such as lists and None).

    The engine logs the scalars at each eval and keeps the rest (confusion matrices, per-class
    lists, undefined scores) for results.json. NaN stays a scalar: it is a number a tracker can show.
    """
    scalars, others = {}, {}
    for key, value in metrics.items():
        scalar = _as_scalar(value)
        if scalar is None:
            others[key] = value
        else:
            scalars[key] = scalar
    return scalars, others


def prefixed(metrics: dict, prefix: str) -> dict:
    """Keys prefixed with `prefix/` (prefix "eval": "accuracy" -> "eval/accuracy"); "" leaves them as they are."""
    prefix = prefix.rstrip("/")
    if not prefix:
        return dict(metrics)
    return {f"{prefix}/{key}": value for key, value in metrics.items()}


def is_finite_number(value: Any) -> bool:
    """True for a real, finite number (used to decide what can be plotted or compared as 'best')."""
    scalar = _as_scalar(value)
    return scalar is not None and math.isfinite(scalar)
