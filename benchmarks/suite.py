"""Every task's pair (our engine, then transformers.Trainer) run back to back, in one table.

    python -m benchmarks run [--tasks text_classification ...] [--quick]

Both sides get the same model, data, batch size, precision, optimizer settings and epochs or steps (each
task's recipe is the single source). In --quick mode both evaluate once, at the end, so train samples/s is
the training loop alone; the full mode evaluates at the recipe's cadence, which time-to-target needs.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import python_command, ratio, run_measured, write_merged_rows
from shared.data import benchmark_data_dir
from shared.runtime import resolve_mixed_precision


@dataclass
class Pair:
    """One task's side-by-side: the flags both sides share, and where each reads its numbers."""
    task: str
    recipe: str
    metric: str  # the main validation metric, as named in both sides' results ("eval_<metric>")
    target: float | None  # the task issue's target, for time-to-target
    data_flags: list[str]
    quick_flags: list[str] = field(default_factory=list)
    full_flags: list[str] = field(default_factory=list)
    baseline: str = ""  # benchmarks/baselines/<task>_trainer.py unless set

    def baseline_script(self) -> str:
        return self.baseline or f"benchmarks/baselines/{self.task}_trainer.py"


def pairs() -> dict[str, Pair]:
    data = benchmark_data_dir()
    text, image = data / "text_classification" / "rotten_tomatoes", data / "image_classification" / "hymenoptera"
    qa, mt = data / "question_answering" / "xquad_en", data / "translation" / "multi30k_de_en"
    boxes, masks = data / "object_detection" / "raccoon", data / "semantic_segmentation" / "camvid"
    ner = data / "token_classification" / "wikiann_en"
    found = [
        Pair("text_classification", "tasks/text_classification/recipes/rotten_tomatoes.yaml", "accuracy", 0.83,
             ["--train_file", str(text / "train.csv"), "--validation_file", str(text / "validation.csv")],
             quick_flags=["--max_train_samples", "2000", "--num_train_epochs", "1"]),
        Pair("image_classification", "tasks/image_classification/recipes/hymenoptera.yaml", "accuracy", 0.92,
             ["--train_dir", str(image / "train"), "--validation_dir", str(image / "validation")],
             quick_flags=["--num_train_epochs", "1"]),
        Pair("question_answering", "tasks/question_answering/recipes/xquad.yaml", "f1", 20.0,
             ["--train_file", str(qa / "train.json"), "--validation_file", str(qa / "validation.json")],
             quick_flags=["--max_train_samples", "300", "--num_train_epochs", "1"]),
        Pair("translation", "tasks/translation/recipes/multi30k.yaml", "bleu", None,
             ["--train_file", str(mt / "train.jsonl"), "--validation_file", str(mt / "validation.jsonl")],
             quick_flags=["--max_train_samples", "3000", "--max_eval_samples", "200", "--num_train_epochs", "1"]),
        Pair("object_detection", "tasks/object_detection/recipes/raccoon.yaml", "map_50", 0.40,
             ["--train_dir", str(boxes / "train"), "--validation_dir", str(boxes / "validation")],
             quick_flags=["--num_train_epochs", "3"]),
        Pair("semantic_segmentation", "tasks/semantic_segmentation/recipes/camvid.yaml", "mean_iou", 0.55,
             ["--train_dir", str(masks / "train"), "--validation_dir", str(masks / "validation")],
             quick_flags=["--max_train_steps", "80"]),
        Pair("token_classification", "tasks/token_classification/recipes/wikiann.yaml", "f1", 0.70,
             ["--train_file", str(ner / "train.conll"), "--validation_file", str(ner / "validation.conll")],
             quick_flags=["--max_train_samples", "5000"]),  # a quarter of train, all 10,000 validation sentences
    ]
    return {pair.task: pair for pair in found}


def _time_to_target(history: list[dict], metric: str, target: float | None) -> float | None:
    """Seconds from the start of training to the first evaluation at or above the target."""
    if target is None:
        return None
    hits = [r["time_s"] for r in history if r.get(f"eval/{metric}", r.get(f"eval_{metric}", -1e9)) >= target]
    return round(hits[0], 1) if hits else None


def _ours(pair: Pair, flags: list[str], work: Path, per_epoch_eval: bool) -> dict:
    out = work / f"{pair.task}-ours"
    schedule = ([] if per_epoch_eval else ["--eval_strategy", "end"]) + ["--save_strategy", "no"]  # else the recipe's
    measured = run_measured(python_command(f"tasks/{pair.task}/train.py", "--config", pair.recipe, *flags,
                                           *schedule, "--output_dir", str(out), "--run_name", "run"),
                            work / f"{out.name}.log")
    results = json.loads((out / "run" / "results.json").read_text())
    history = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"run": "ours", "value": results[f"last_eval_{pair.metric}"],
            "time_to_target_s": _time_to_target(history, pair.metric, pair.target),
            "train_samples_per_s": results["train_samples_per_second"],
            "eval_samples_per_s": results.get("eval_samples_per_second"),
            "precision": results["precision"], "steps": results["global_step"], **measured,
            "model_dir": str(out / "run" / "best")}


def _trainer(pair: Pair, flags: list[str], work: Path, precision: str, per_epoch_eval: bool) -> dict:
    out = work / f"{pair.task}-trainer"
    out.mkdir(parents=True, exist_ok=True)
    extra = (["--bf16"] if precision == "bf16" else []) + (["--per_epoch_eval"] if per_epoch_eval else [])
    measured = run_measured(python_command(pair.baseline_script(), "--recipe", pair.recipe, "--output_dir", str(out),
                                           *extra, *flags), work / f"{out.name}.log")
    results = json.loads((out / "trainer_results.json").read_text())
    value = results.get(f"last_eval_{pair.metric}", results[f"eval_{pair.metric}"])  # last weights, as ours
    return {"run": "transformers.Trainer", "value": value,
            "time_to_target_s": _time_to_target(results.get("eval_history", []), pair.metric, pair.target),
            "train_samples_per_s": round(results["train_samples_per_second"], 3),
            "eval_samples_per_s": results.get("eval_samples_per_second"),
            "precision": precision, "steps": results.get("global_step"), **measured}


def run_pair(pair: Pair, quick: bool, work: Path) -> list[dict]:
    flags = pair.data_flags + (pair.quick_flags if quick else pair.full_flags)
    precision = resolve_mixed_precision("auto")  # what our side's --mixed_precision auto picks here
    ours = _ours(pair, flags, work, per_epoch_eval=not quick)
    theirs = _trainer(pair, flags, work, precision, per_epoch_eval=not quick)
    for row in (ours, theirs):
        row.update(task=pair.task, metric=pair.metric, target=pair.target,
                   speed_vs_trainer=ratio(row["train_samples_per_s"], theirs["train_samples_per_s"]),
                   memory_vs_trainer=ratio(row["peak_rss_mb"], theirs["peak_rss_mb"]))
        row["value"] = round(row["value"], 4)
    return [ours, theirs]


COLUMNS = ["task", "run", "metric", "value", "target", "time_to_target_s", "train_samples_per_s", "speed_vs_trainer",
           "eval_samples_per_s", "peak_rss_mb", "memory_vs_trainer", "wall_seconds", "steps", "precision"]


def run_suite(tasks: list[str], quick: bool) -> Path:
    known = pairs()
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise SystemExit(f"no benchmark pair for {unknown}; known: {sorted(known)}")
    work = Path(tempfile.mkdtemp(prefix="bench_suite_"))
    command = f"python -m benchmarks run{' --quick' if quick else ''} --tasks {' '.join(tasks)}"
    rows = []
    for task in tasks:
        started = time.perf_counter()
        rows += run_pair(known[task], quick, work)
        print(f"[{task}] done in {time.perf_counter() - started:.0f} s", flush=True)
        _write(rows, quick, work, command)  # after each pair, so a long run keeps what it measured
    return _write(rows, quick, work, command)


def _write(rows: list[dict], quick: bool, work: Path, command: str) -> Path:
    return write_merged_rows("suite" + ("-quick" if quick else ""), rows, command, COLUMNS, quick=quick,
                             logs=str(work))
