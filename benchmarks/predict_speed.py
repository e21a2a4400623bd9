"""predict.py against a plain `transformers.pipeline(<tag>, model=dir)` loop, for every task, side by side in one run.

    python benchmarks/predict_speed.py [--tasks ...] [--repeats 1] [--count TASK=N ...] [--model TASK=DIR ...]
                                       [--models_dir DIR] [--dry_run] [--result PATH]

Per task: a model folder as a user gets it (the task's train.py on its embedded sample, the default packaged
backbone, `--max_train_steps 2`, then `<run>/best`; `--model TASK=DIR` uses a folder you have), and real validation
inputs from ../shared/data written unlabelled (benchmarks/predict_tasks.py). Each side runs in a fresh process on
the same model, inputs and batch size (32), fp32 (`--mixed_precision no` for predict.py: the pipeline runs fp32),
writing the same kind of file (benchmarks/predict_pipelines.py for the pipeline side); the order alternates per
task and repeat, so a noisy neighbour slows both. `loop_seconds` runs from the model loaded to the last row written,
as predict.py reports it; `wall_seconds` is the whole process, imports and model loading included.
`--dry_run`: 8 inputs per task, one repeat, the result written only where `--result` says.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from benchmarks.common import machine_info, markdown_table, python_command, ratio, run_measured, write_result  # noqa: E402
from benchmarks.predict_tasks import COUNTS, OUTPUTS, TASKS, agreement, pipeline_settings, write_inputs  # noqa: E402

SIDES = ("predict.py", "pipeline")
# the image inputs are links into ../shared/data (nothing copied), which predict.py refuses unless told
IMAGE_LINKS_FLAG = {task: ["--allow_paths_outside_data"]
                    for task in ("image_classification", "object_detection", "semantic_segmentation")}
COLUMNS = ["task", "inputs", "predict.py rows/s", "pipeline rows/s", "ratio", "predict.py wall s", "pipeline wall s",
           "predict.py peak MB", "pipeline peak MB", "agreement"]


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        task, _, setting = value.partition("=")
        if task not in TASKS or not setting:
            raise SystemExit(f"{flag} {value}: expected TASK=VALUE with TASK one of {', '.join(TASKS)}")
        pairs[task] = setting
    return pairs


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--count", nargs="*", default=[], help="TASK=N inputs (defaults: predict_tasks.COUNTS)")
    parser.add_argument("--model", nargs="*", default=[], help="TASK=DIR: predict with this model folder, train none")
    parser.add_argument("--models_dir", help="Keep the trained models here; a task whose <dir>/<task>/run/best "
                                             "exists is not trained again")
    parser.add_argument("--train_steps", type=int, default=2)
    parser.add_argument("--dry_run", action="store_true", help="8 inputs per task, one repeat (a plumbing check)")
    parser.add_argument("--result", help="Result JSON path (default results/<date>-<machine>-predict_speed.json; "
                                         "a dry run writes none unless given)")
    args = parser.parse_args(argv)
    args.counts = {t: 8 if args.dry_run else COUNTS[t] for t in TASKS}
    args.counts.update({t: int(n) for t, n in _pairs(args.count, "--count").items()})
    args.models = {t: Path(d) for t, d in _pairs(args.model, "--model").items()}
    if args.dry_run:
        args.repeats = 1
    return args


def trained_model(task: str, folder: Path, steps: int) -> tuple[Path, dict | None]:
    """<folder>/<task>/run/best from the task's train.py on its embedded sample (kept if already there)."""
    best = folder / task / "run" / "best"
    if best.is_dir():
        return best, None
    command = python_command(f"tasks/{task}/train.py", "--max_train_steps", str(steps), "--output_dir",
                             str(folder / task), "--run_name", "run", "--eval_strategy", "no", "--save_strategy", "no")
    measured = run_measured(command, folder / f"train_{task}.log")
    print(f"[{task}] trained {best} in {measured['wall_seconds']} s", flush=True)
    return best, measured


def side_command(side: str, task: str, model: Path, source: Path, output: Path, batch_size: int) -> list[str]:
    if side == "predict.py":
        return python_command(f"tasks/{task}/predict.py", "--model_name_or_path", str(model), "--input", str(source),
                              "--output", str(output), "--per_device_eval_batch_size", str(batch_size),
                              "--mixed_precision", "no", *IMAGE_LINKS_FLAG.get(task, []))
    settings = json.dumps(pipeline_settings(task, model, batch_size))
    return python_command("benchmarks/predict_pipelines.py", task, str(model), str(source), str(output), settings)


def loop_report(log: Path) -> tuple[int, float]:
    """(inputs, seconds) of the `(N inputs in S s` line both sides print last."""
    found = re.findall(r"\((\d+) inputs in ([0-9.]+) s", log.read_text())
    if not found:
        raise RuntimeError(f"{log}: no '(N inputs in S s' line")
    return int(found[-1][0]), float(found[-1][1])


def run_side(side: str, task: str, model: Path, source: Path, folder: Path, repeat: int, batch_size: int) -> dict:
    tag = "predict" if side == "predict.py" else "pipeline"
    output = folder / f"{tag}_{repeat}" / OUTPUTS[task]
    output.parent.mkdir(parents=True, exist_ok=True)
    log = folder / f"{tag}_{repeat}.log"
    measured = run_measured(side_command(side, task, model, source, output, batch_size), log)
    count, seconds = loop_report(log)
    row = {"task": task, "side": side, "repeat": repeat, "inputs": count, "loop_seconds": round(seconds, 3),
           "rows_per_second": round(count / max(seconds, 1e-9), 2), **measured, "output": str(output)}
    print(json.dumps({k: v for k, v in row.items() if k != "output"}), flush=True)
    return row


def measure_task(task: str, index: int, model: Path, args, tmp: Path) -> list[dict]:
    """Both sides `repeats` times on the same inputs; who goes first alternates with the task and the repeat."""
    folder = tmp / task
    source = write_inputs(task, args.counts[task], folder / "inputs")
    rows = []
    for repeat in range(args.repeats):
        order = SIDES if (index + repeat) % 2 == 0 else SIDES[::-1]
        rows += [run_side(side, task, model, source, folder, repeat, args.batch_size) for side in order]
    return rows


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def summary(task: str, rows: list[dict]) -> dict:
    """One line per task: each side's mean rate over the repeats, their ratio, and the outputs' agreement."""
    by_side = {side: [r for r in rows if r["side"] == side] for side in SIDES}
    rate = {side: _mean([r["rows_per_second"] for r in by_side[side]]) for side in SIDES}
    ours, theirs = Path(by_side["predict.py"][-1]["output"]), Path(by_side["pipeline"][-1]["output"])
    written_ours, written_theirs, same = agreement(task, ours, theirs)
    line = {"task": task, "inputs": rows[0]["inputs"], "predict.py rows/s": rate["predict.py"],
            "pipeline rows/s": rate["pipeline"], "ratio": ratio(rate["predict.py"], rate["pipeline"]),
            "agreement": same, "units_written": [written_ours, written_theirs],
            "rates": {side: [r["rows_per_second"] for r in by_side[side]] for side in SIDES}}
    for side in SIDES:
        line[f"{side} wall s"] = _mean([r["wall_seconds"] for r in by_side[side]])
        line[f"{side} peak MB"] = max(r["peak_rss_mb"] for r in by_side[side])
    return line


def run(args) -> dict:
    result = {"machine": machine_info(), "command": " ".join(["python", "benchmarks/predict_speed.py", *args.argv]),
              "batch_size": args.batch_size, "precision": "fp32", "repeats": args.repeats, "rows": [], "summary": [],
              "training": {}}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        models_dir = Path(args.models_dir) if args.models_dir else tmp / "models"
        for index, task in enumerate(args.tasks):
            if task in args.models:
                model = args.models[task]
            else:
                model, trained = trained_model(task, models_dir, args.train_steps)
                if trained:
                    result["training"][task] = trained
            rows = measure_task(task, index, model, args, tmp)
            result["rows"] += [{**r, "model": str(model)} for r in rows]
            result["summary"].append(summary(task, rows))
            print(markdown_table(result["summary"][-1:], COLUMNS), flush=True)
        for row in result["rows"]:
            row.pop("output")  # a temporary path, gone with the run
    result["table"] = markdown_table(result["summary"], COLUMNS)
    return result


def write(result: dict, args) -> Path | None:
    if args.result:
        path = Path(args.result)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
    elif args.dry_run:
        return None
    else:
        path = write_result("predict_speed", result)
    path.with_suffix(".md").write_text(f"`{result['command']}`\n\n{result['table']}")
    return path


def main(argv: list[str] | None = None) -> Path | None:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    result = run(args)
    result["seconds"] = round(time.perf_counter() - started, 1)
    path = write(result, args)
    print(result["table"])
    print(f"{'written to ' + str(path) if path else 'dry run: nothing written'} in {result['seconds']:.0f} s")
    return path


if __name__ == "__main__":
    main()
