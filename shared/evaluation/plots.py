"""Training curves, confusion matrices, per-class bars and image grids as PNG files (matplotlib, Agg)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from shared.evaluation.scoring import is_finite_number

MAX_ANNOTATED_CLASSES = 30  # beyond this, per-cell / per-bar numbers are unreadable


def _new_figure(width: float, height: float) -> Figure:
    # A bare Figure on an Agg canvas: no pyplot state, no display, nothing left open after saving.
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    fig.clear()
    return path


def _read_series(metrics_jsonl: Path) -> dict[str, list[tuple[float, float]]]:
    """Every finite numeric key of metrics.jsonl as (step, value) pairs; bad or partial lines skipped."""
    series: dict[str, list[tuple[float, float]]] = {}
    with open(metrics_jsonl, encoding="utf-8") as f:
        for index, line in enumerate(f):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # blank, or the last line of a run killed mid-write
                continue
            if not isinstance(record, dict):
                continue
            step = record.get("step", index)
            if not is_finite_number(step):
                continue
            for key, value in record.items():
                if key not in ("step", "epoch") and is_finite_number(value):
                    series.setdefault(key, []).append((float(step), float(value)))
    return series


def _line_plot(curves: dict[str, list[tuple[float, float]]], title: str, ylabel: str, path: Path) -> Path:
    fig = _new_figure(7, 4.5)
    ax = fig.add_subplot()
    for label, points in curves.items():
        steps, values = zip(*sorted(points))
        ax.plot(steps, values, label=label, marker="o" if len(points) <= 20 else None, markersize=3)
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    return _save(fig, path)


def _is_constant(key: str, points: list[tuple[float, float]]) -> bool:
    """A count (eval/num_samples) or a series that never moves: a flat line says nothing worth a panel."""
    return key.rsplit("/", 1)[-1].startswith("num_") or (len(points) > 1 and len({v for _, v in points}) == 1)


def _overview_panels(series: dict) -> list[tuple[str, list[str]]]:
    """(title, keys) per panel: losses, learning rate, each validation metric, then the other moving curves."""
    moving = {k: v for k, v in series.items() if "/" in k and not _is_constant(k, v)}  # time_s has no split
    panels = [("loss", [k for k in ("train/loss", "eval/loss") if k in moving])]
    panels.append(("learning rate", [k for k in ("train/lr",) if k in moving]))
    names = sorted({k.split("/", 1)[1] for k in moving if k.startswith(("eval/", "test/"))} - {"loss"})
    panels += [(name, [k for k in (f"eval/{name}",) if k in moving]) for name in names]
    shown = {k for _, keys in panels for k in keys} | {k for k in moving if k.startswith("test/")}
    panels += [(k, [k]) for k in sorted(moving) if k not in shown]
    return [(title, keys) for title, keys in panels if keys or f"test/{title}" in moving]


def plot_overview(metrics_jsonl: Path, path: Path) -> Path | None:
    """One figure of every curve of the run (losses, learning rate, each validation metric, throughput), the
    test score of the best model marked on its metric's panel; constant series left out. None without data."""
    if not Path(metrics_jsonl).is_file():
        return None
    series = _read_series(Path(metrics_jsonl))
    panels = _overview_panels(series)
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = _new_figure(5.0 * cols, 3.4 * rows)
    for index, (title, keys) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, index + 1)
        for key in keys:
            steps, values = zip(*sorted(series[key]))
            ax.plot(steps, values, label=key, marker="o" if len(steps) <= 20 else None, markersize=3)
        test = series.get(f"test/{title}")
        if test:
            step, value = test[-1]
            ax.axhline(value, color="tab:red", linestyle="--", linewidth=1)
            ax.plot([step], [value], marker="*", markersize=12, color="tab:red", linestyle="none",
                    label=f"test, best model: {value:.4g}")
        ax.set(title=title, xlabel="step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Run overview ({Path(metrics_jsonl).parent.name})")
    return _save(fig, path)


def _file_stem(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key.replace("/", "_"))


def plot_training_curves(metrics_jsonl: Path, out_dir: Path) -> list[Path]:
    """Write loss.png, learning_rate.png and one eval_<name>.png per eval metric; return the paths written.

    eval/loss is drawn on loss.png beside train/loss rather than on a figure of its own; counts and
    metrics that never move (eval/num_samples) get no figure.
    A missing metrics.jsonl (a run that never logged) writes nothing.
    """
    if not Path(metrics_jsonl).is_file():
        return []
    series = _read_series(Path(metrics_jsonl))
    out_dir = Path(out_dir)
    written = []
    losses = {key: series[key] for key in ("train/loss", "eval/loss") if key in series}
    if losses:
        written.append(_line_plot(losses, "Loss", "loss", out_dir / "loss.png"))
    if "train/lr" in series:
        lr = {"train/lr": series["train/lr"]}
        written.append(_line_plot(lr, "Learning rate", "lr", out_dir / "learning_rate.png"))
    for key in sorted(series):
        if key.startswith("eval/") and key != "eval/loss" and not _is_constant(key, series[key]):
            name = key.split("/", 1)[1]
            written.append(_line_plot({key: series[key]}, key, name, out_dir / f"{_file_stem(key)}.png"))
    return written


def plot_confusion_matrix(matrix: Any, labels: list[str], path: Path, normalize: bool = True) -> Path:
    """Heatmap of a confusion matrix (rows = true, columns = predicted); rows normalised to recall by default."""
    counts = np.asarray(matrix, dtype=np.float64)
    n = len(labels)
    if counts.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {counts.shape} does not match {n} labels")
    values = counts
    if normalize:
        row_sums = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)
    side = min(max(5.0, 0.45 * n + 2.5), 24.0)
    fig = _new_figure(side + 1.0, side)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(values.max(), 1.0))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set(title="Confusion matrix" + (" (row-normalised)" if normalize else ""), xlabel="predicted", ylabel="true")
    if n <= 2 * MAX_ANNOTATED_CLASSES:  # tick labels stay legible a little longer than cell text
        fontsize = 9 if n <= 10 else 7 if n <= MAX_ANNOTATED_CLASSES else 5
        rotation, align = (45, "right") if n > 5 else (0, "center")
        ax.set_xticks(range(n), labels, rotation=rotation, ha=align, fontsize=fontsize)
        ax.set_yticks(range(n), labels, fontsize=fontsize)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if n <= MAX_ANNOTATED_CLASSES:
        threshold = image.norm.vmax / 2
        cell_fontsize = 10 if n <= 10 else 7 if n <= 20 else 5
        for i in range(n):
            for j in range(n):
                text = f"{values[i, j]:.2f}" if normalize else f"{int(counts[i, j])}"
                color = "white" if values[i, j] > threshold else "black"
                ax.text(j, i, text, ha="center", va="center", color=color, fontsize=cell_fontsize)
    return _save(fig, path)


def plot_per_class_bars(values: list[float], labels: list[str], title: str, path: Path) -> Path:
    """Bar chart of one score per class (per-class F1, IoU, ...); None or NaN values get no bar."""
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} values for {len(labels)} labels")
    heights = np.array([v if is_finite_number(v) else np.nan for v in values], dtype=np.float64)
    n = len(labels)
    fig = _new_figure(min(max(6.0, 0.35 * n + 2.0), 30.0), 4.5)
    ax = fig.add_subplot()
    positions = np.arange(n)
    bars = ax.bar(positions, np.nan_to_num(heights), color="tab:blue")
    finite = heights[np.isfinite(heights)]
    top = max(1.0, float(finite.max())) if finite.size else 1.0
    ax.set_ylim(min(0.0, float(finite.min())) if finite.size else 0.0, top * 1.1)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if n <= 2 * MAX_ANNOTATED_CLASSES:
        ax.set_xticks(positions, labels, rotation=45 if n > 5 else 0, ha="right" if n > 5 else "center", fontsize=8)
    if n <= MAX_ANNOTATED_CLASSES:
        texts = ["n/a" if math.isnan(h) else f"{h:.2f}" for h in heights]
        ax.bar_label(bars, labels=texts, fontsize=7, padding=2)
    return _save(fig, path)


def _to_array(image: Any) -> np.ndarray:
    """A PIL image or an HxW / HxWxC array as an array imshow accepts (floats scaled into [0, 1])."""
    array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:  # grayscale or a mask: imshow scales it to the colormap itself
        return array
    if np.issubdtype(array.dtype, np.floating):
        scale = 255.0 if np.nanmax(array) > 1.0 else 1.0  # float pixels on the 0-255 scale
        return np.clip(array / scale, 0.0, 1.0)
    return np.clip(array, 0, 255).astype(np.uint8)


def plot_image_grid(images: list, titles: list[str], path: Path, cols: int = 4) -> Path:
    """Images in a grid with a title above each (misclassified examples, segmentation overlays)."""
    if not images:
        raise ValueError("no images to plot")
    if len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    cols = max(1, min(cols, len(images)))
    rows = math.ceil(len(images) / cols)
    fig = _new_figure(3.0 * cols, 3.2 * rows)
    for index, (image, title) in enumerate(zip(images, titles)):
        ax = fig.add_subplot(rows, cols, index + 1)
        array = _to_array(image)
        ax.imshow(array, cmap="gray" if array.ndim == 2 else None)
        ax.set_title(str(title), fontsize=9)
        ax.axis("off")
    return _save(fig, path)


def plot_pr_curves(curves: dict[str, list[float]], recall_points: list[float], path: Path,
                   title: str = "Precision-recall") -> Path:
    """One precision-recall line per class (precision sampled at `recall_points`), its area in the legend."""
    fig = _new_figure(6.5, 5)
    ax = fig.add_subplot()
    for label, precision in curves.items():
        area = float(np.mean(precision)) if len(precision) else float("nan")  # COCO's 101-point interpolated AP
        ax.plot(recall_points, precision, label=f"{label} (AP {area:.3f})")
    ax.set(title=title, xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    if len(curves) <= MAX_ANNOTATED_CLASSES:
        ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path)
