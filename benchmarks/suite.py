"""Every task's pair (our engine, then transformers.Trainer) run back to back, in one table.

    python -m benchmarks run [--tasks text_classification ...] [--quick] [--seeds 0 1 2] [--only ours|trainer]
        [--epochs N] [--extra_flags "..."] [--ours_flags "..."] [--trainer_flags "..."] [--eval_at_end]
        [--omp_passive] [--tag NAME] [--dry_run]

Both sides get the same model, data, batch size, precision, optimizer settings and epochs or steps (each
task's recipe is the single source). In --quick mode both evaluate once, at the end, so train samples/s is
the training loop alone; the full mode evaluates at the recipe's cadence, which time-to-target needs.
Options change every task of the run alike: `--seeds` runs both sides once per seed (alternating, so a
noisy neighbour slows both) and adds a mean row per side; `--extra_flags` go to both sides' training
commands, `--ours_flags` to ours only, `--trainer_flags` to the Trainer baseline only (e.g. its
`--pipeline suite`, `--trainer_learning_rate 1e-4`, `--max_steps 450`, or `--mixed_precision no` for an
fp32 Trainer side); a variant's `--tag` keeps its rows in a result file of its own.
"""
from __future__ import annotations

import json
import os
import shlex
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import ROOT, python_command, ratio, run_measured, write_merged_rows
from shared.inputs.data import benchmark_data_dir
from shared.toolkit.runtime import resolve_mixed_precision


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
    also: tuple[str, ...] = ()  # further validation metrics both sides report, kept beside the main one

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
             quick_flags=["--max_train_samples", "2000", "--num_train_epochs", "1"], also=("f1",)),
        Pair("image_classification", "tasks/image_classification/recipes/hymenoptera.yaml", "accuracy", 0.92,
             ["--train_dir", str(image / "train"), "--validation_dir", str(image / "validation")],
             quick_flags=["--num_train_epochs", "1"], also=("f1",)),
        Pair("question_answering", "tasks/question_answering/recipes/xquad.yaml", "f1", 20.0,
             ["--train_file", str(qa / "train.json"), "--validation_file", str(qa / "validation.json")],
             quick_flags=["--max_train_samples", "300", "--num_train_epochs", "1"], also=("exact_match",)),
        Pair("translation", "tasks/translation/recipes/multi30k.yaml", "bleu", None,
             ["--train_file", str(mt / "train.jsonl"), "--validation_file", str(mt / "validation.jsonl")],
             quick_flags=["--max_train_samples", "3000", "--max_eval_samples", "200", "--num_train_epochs", "1"],
             also=("chrf",)),
        Pair("object_detection", "tasks/object_detection/recipes/raccoon.yaml", "map_50", 0.40,
             ["--train_dir", str(boxes / "train"), "--validation_dir", str(boxes / "validation")],
             quick_flags=["--num_train_epochs", "3"], also=("map",)),
        Pair("semantic_segmentation", "tasks/semantic_segmentation/recipes/camvid.yaml", "mean_iou", 0.55,
             ["--train_dir", str(masks / "train"), "--validation_dir", str(masks / "validation")],
             quick_flags=["--max_train_steps", "80"], also=("pixel_accuracy", "per_class_iou")),
        Pair("token_classification", "tasks/token_classification/recipes/wikiann.yaml", "f1", 0.70,
             ["--train_file", str(ner / "train.conll"), "--validation_file", str(ner / "validation.conll")],
             quick_flags=["--max_train_samples", "5000"]),  # a quarter of train, all 10,000 validation sentences
    ]
    return {pair.task: pair for pair in found}


@dataclass
class Options:
    """What one `python -m benchmarks run` changes beyond the recipes; the same for every task of the run."""
    quick: bool = False
    seeds: list[int] | None = None  # None: the recipe's seed, one run a side
    only: str | None = None  # "ours" or "trainer": one side alone
    epochs: int | None = None  # --num_train_epochs for both sides (after the quick slice's, so it wins)
    extra_flags: list[str] = field(default_factory=list)  # both sides' training flags
    ours_flags: list[str] = field(default_factory=list)
    trainer_flags: list[str] = field(default_factory=list)  # the baseline's own flags or recipe overrides
    eval_at_end: bool = False  # full mode with one evaluation at the end, as --quick does
    omp_passive: bool = False  # OMP_WAIT_POLICY=PASSIVE for both sides
    tag: str = ""  # result file suffix, so a variant does not replace the plain rows
    recipe: str | None = None  # another recipe of the (one) task, in place of its pair's

    @property
    def per_epoch_eval(self) -> bool:
        return not (self.quick or self.eval_at_end)

    def kind(self) -> str:
        """The result file's name after <date>-<machine>-: suite[-quick][-<tag>]."""
        return "suite" + ("-quick" if self.quick else "") + (f"-{self.tag}" if self.tag else "")

    def command(self, tasks: list[str]) -> str:
        """The command line that measures these rows, as a reader would type it."""
        parts = ["python", "-m", "benchmarks", "run"] + (["--quick"] if self.quick else []) + ["--tasks", *tasks]
        if self.seeds is not None:
            parts += ["--seeds", *map(str, self.seeds)]
        parts += ["--only", self.only] if self.only else []
        parts += ["--epochs", str(self.epochs)] if self.epochs is not None else []
        for name in ("extra_flags", "ours_flags", "trainer_flags"):
            flags = getattr(self, name)
            parts += [f"--{name}={shlex.join(flags)}"] if flags else []
        parts += (["--eval_at_end"] if self.eval_at_end else []) + (["--omp_passive"] if self.omp_passive else [])
        parts += ["--tag", self.tag] if self.tag else []
        parts += ["--recipe", self.recipe] if self.recipe else []
        return shlex.join(parts)


@dataclass
class Run:
    """One training process the suite launches: a side of a pair, for one seed."""
    task: str
    side: str  # "ours" or "trainer"
    seed: int | None
    out: Path
    command: list[str]
    env: dict
    precision: str  # the mixed precision this side trains in


def _flag_value(flags: list[str], name: str, default: str) -> str:
    """The last value given to `name` in `flags` (argparse keeps the last), else `default`."""
    value = default
    for i, flag in enumerate(flags):
        if flag == name and i + 1 < len(flags):
            value = flags[i + 1]
        elif flag.startswith(f"{name}="):
            value = flag.split("=", 1)[1]
    return value


def plan(pair: Pair, options: Options, work: Path) -> list[Run]:
    """The processes one pair runs, in order, without running them: per seed ours, then Trainer."""
    recipe = options.recipe or pair.recipe
    shared = pair.data_flags + (pair.quick_flags if options.quick else pair.full_flags)
    shared += ["--num_train_epochs", str(options.epochs)] if options.epochs is not None else []
    env = {"OMP_WAIT_POLICY": "PASSIVE"} if options.omp_passive else {}
    runs = []
    for seed in options.seeds if options.seeds is not None else [None]:
        seeded = ["--seed", str(seed)] if seed is not None else []
        suffix = f"-seed{seed}" if seed is not None else ""
        if options.only != "trainer":
            out = work / f"{pair.task}-ours{suffix}"
            ours = [*shared, *options.extra_flags, *options.ours_flags]
            # the schedule first, so a --ours_flags "--eval_strategy ..." given by the user wins
            schedule = ([] if options.per_epoch_eval else ["--eval_strategy", "end"]) + ["--save_strategy", "no"]
            command = python_command(f"tasks/{pair.task}/train.py", "--config", recipe, *schedule, *ours,
                                     *seeded, "--output_dir", str(out), "--run_name", "run")
            precision = resolve_mixed_precision(_flag_value(ours, "--mixed_precision", "auto"))
            runs.append(Run(pair.task, "ours", seed, out, command, env, precision))
        if options.only != "ours":
            out = work / f"{pair.task}-trainer{suffix}"
            theirs = [*shared, *options.extra_flags, *options.trainer_flags]
            # what our side's --mixed_precision picks here, unless the flags set it for this side
            precision = resolve_mixed_precision(_flag_value(theirs, "--mixed_precision", "auto"))
            extra = ["--bf16"] if precision == "bf16" else []
            extra += ["--per_epoch_eval"] if options.per_epoch_eval else []
            command = python_command(pair.baseline_script(), "--recipe", recipe, "--output_dir", str(out),
                                     *extra, *theirs, *seeded)
            runs.append(Run(pair.task, "trainer", seed, out, command, env, precision))
    return runs


def _time_to_target(history: list[dict], metric: str, target: float | None) -> float | None:
    """Seconds from the start of training to the first evaluation at or above the target."""
    if target is None:
        return None
    hits = [r["time_s"] for r in history if r.get(f"eval/{metric}", r.get(f"eval_{metric}", -1e9)) >= target]
    return round(hits[0], 1) if hits else None


def _also(pair: Pair, results: dict) -> tuple[dict, dict]:
    """The pair's further metrics of the final weights: scalars for the table, lists (per class) apart."""
    scalars, lists = {}, {}
    for name in pair.also:
        value = results.get(f"last_eval_{name}", results.get(f"eval_{name}"))
        if isinstance(value, (int, float)):
            scalars[name] = round(value, 4)
        elif value is not None:
            lists[name] = value
    return scalars, lists


def _ours_row(pair: Pair, run: Run, measured: dict) -> dict:
    results = json.loads((run.out / "run" / "results.json").read_text())
    history = [json.loads(line) for line in (run.out / "run" / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    scalars, lists = _also(pair, results)
    return {"run": "ours", "seed": run.seed, "value": results[f"last_eval_{pair.metric}"],
            "best_value": results.get(f"eval_{pair.metric}"), "other_metrics": scalars, **lists,
            "time_to_target_s": _time_to_target(history, pair.metric, pair.target),
            "train_samples_per_s": results["train_samples_per_second"],
            "eval_samples_per_s": results.get("eval_samples_per_second"),
            "precision": results["precision"], "steps": results["global_step"], **measured,
            "model_dir": str(run.out / "run" / "best")}


def _trainer_row(pair: Pair, run: Run, measured: dict) -> dict:
    results = json.loads((run.out / "trainer_results.json").read_text())
    value = results.get(f"last_eval_{pair.metric}", results[f"eval_{pair.metric}"])  # last weights, as ours
    scalars, lists = _also(pair, results)
    return {"run": "transformers.Trainer", "seed": run.seed, "value": value,
            "best_value": results.get(f"eval_{pair.metric}"), "other_metrics": scalars, **lists,
            "time_to_target_s": _time_to_target(results.get("eval_history", []), pair.metric, pair.target),
            "train_samples_per_s": round(results["train_samples_per_second"], 3),
            "eval_samples_per_s": results.get("eval_samples_per_second"),
            "precision": run.precision, "steps": results.get("global_step"), **measured}


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.mean(values), 4) if values else None


def seed_means(rows: list[dict]) -> list[dict]:
    """One row per side with the mean over its seeds, and the range of the main metric."""
    means = []
    for name in dict.fromkeys(row["run"] for row in rows):
        runs = [row for row in rows if row["run"] == name]
        if len(runs) < 2:
            continue
        values = [row["value"] for row in runs]
        means.append({"task": runs[0]["task"], "run": f"{name}, mean of {len(runs)} seeds",
                      "seed": " ".join(str(row["seed"]) for row in runs), "metric": runs[0]["metric"],
                      "target": runs[0]["target"], "value": _mean(values),
                      "value_range": f"{min(values):.4g}-{max(values):.4g}",
                      **{key: _mean([row.get(key) for row in runs])
                         for key in ("best_value", "train_samples_per_s", "eval_samples_per_s", "peak_rss_mb",
                                     "wall_seconds")},
                      "precision": runs[0]["precision"]})
    return means


def _ratios(rows: list[dict]) -> None:
    """Each row's speed and memory over the Trainer row of its seed (or the Trainer mean, for a mean)."""
    trainers = {row.get("seed"): row for row in rows if row["run"].startswith("transformers.Trainer")}
    for row in rows:
        theirs = trainers.get(row.get("seed"), {})
        row["speed_vs_trainer"] = ratio(row.get("train_samples_per_s"), theirs.get("train_samples_per_s"))
        row["memory_vs_trainer"] = ratio(row.get("peak_rss_mb"), theirs.get("peak_rss_mb"))


def run_pair(pair: Pair, options: Options, work: Path) -> list[dict]:
    rows = []
    for run in plan(pair, options, work):  # alternating the sides, so a noisy neighbour slows both alike
        if run.side == "trainer":
            run.out.mkdir(parents=True, exist_ok=True)
        load = round(os.getloadavg()[0], 2)
        measured = run_measured(run.command, work / f"{run.out.name}.log", run.env)
        row = (_ours_row if run.side == "ours" else _trainer_row)(pair, run, measured)
        row.update(task=pair.task, metric=pair.metric, target=pair.target, load_1m_before=load)
        for key in ("value", "best_value"):
            row[key] = round(row[key], 4) if isinstance(row[key], (int, float)) else row[key]
        rows.append(row)
    rows += seed_means(rows)
    _ratios(rows)
    return rows


COLUMNS = ["task", "run", "seed", "metric", "value", "value_range", "best_value", "other_metrics", "target",
           "time_to_target_s", "train_samples_per_s", "speed_vs_trainer", "eval_samples_per_s", "peak_rss_mb",
           "memory_vs_trainer", "wall_seconds", "steps", "precision"]
OPTIONAL = {"seed", "value_range", "best_value", "other_metrics"}  # shown where some row has one


def columns(rows: list[dict]) -> list[str]:
    return [c for c in COLUMNS if c not in OPTIONAL or any(row.get(c) not in (None, {}, "") for row in rows)]


def check_tasks(tasks: list[str], options: Options) -> dict[str, Pair]:
    known = pairs()
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise SystemExit(f"no benchmark pair for {unknown}; known: {sorted(known)}")
    if options.recipe and len(tasks) != 1:
        raise SystemExit(f"--recipe replaces one task's recipe; --tasks names {len(tasks)}")
    if options.recipe and not (ROOT / options.recipe).is_file():  # both sides run in ROOT, as the pairs' recipes
        raise SystemExit(f"--recipe {options.recipe}: no such file")
    return known


def dry_run(tasks: list[str], options: Options) -> list[Run]:
    """The processes `run_suite` would launch, printed one a line, none started."""
    known = check_tasks(tasks, options)
    work = Path(tempfile.gettempdir()) / "bench_suite_DRY_RUN"
    runs = [run for task in tasks for run in plan(known[task], options, work)]
    for run in runs:
        env = " ".join(f"{k}={v}" for k, v in run.env.items())
        print(f"[{run.task} {run.side}{'' if run.seed is None else f' seed {run.seed}'}] "
              f"{env + ' ' if env else ''}{shlex.join(run.command)}")
    return runs


def run_suite(tasks: list[str], options: Options | None = None) -> Path:
    options = options or Options()
    known = check_tasks(tasks, options)
    work = Path(tempfile.mkdtemp(prefix="bench_suite_"))
    command = options.command(tasks)
    rows = []
    for task in tasks:
        started = time.perf_counter()
        rows += run_pair(known[task], options, work)
        print(f"[{task}] done in {time.perf_counter() - started:.0f} s", flush=True)
        _write(rows, options, work, command)  # after each pair, so a long run keeps what it measured
    return _write(rows, options, work, command)


def _write(rows: list[dict], options: Options, work: Path, command: str) -> Path:
    return write_merged_rows(options.kind(), rows, command, columns, quick=options.quick, logs=str(work))
