"""Image classification benchmark: our engine vs transformers.Trainer on hymenoptera with the packaged MobileNetV2.

    flock /tmp/finetune_train.lock python -m benchmarks.image_classification [--seeds 0 1 2] [--quick]

Each side runs in its own process, one after the other, on the same images, model, batch size, precision
and epochs; each reports validation accuracy/F1 after the last epoch and at its best epoch, training
samples/s (the whole loop, per-epoch evaluations included, as Trainer's train_runtime) and peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from benchmarks.common import machine_info, markdown_table, python_command, ratio, run_measured, write_result
from shared.data import benchmark_data_dir
from shared.runtime import cpu_has_native_bf16, resolve_mixed_precision

RECIPE = "tasks/image_classification/recipes/hymenoptera.yaml"
METRICS = ["last_eval_accuracy", "eval_accuracy", "last_eval_f1", "train_samples_per_second", "peak_rss_mb"]


def _ours(common: list[str], work: Path, seed: int, env: dict) -> dict:
    out = work / f"ours_seed{seed}"
    measured = run_measured(python_command("tasks/image_classification/train.py", "--config", RECIPE, *common,
                                           "--seed", str(seed), "--output_dir", str(out), "--run_name", "run"),
                            work / f"{out.name}.log", env)
    results = json.loads((out / "run" / "results.json").read_text())
    return {"run": "ours", "seed": seed, **measured, **{k: results[k] for k in METRICS[:-1]},
            "precision": results["precision"], "torch_threads": len(os.sched_getaffinity(0))}  # cpu_threads auto


def _trainer(common: list[str], work: Path, seed: int, args: argparse.Namespace, bf16: bool, env: dict) -> dict:
    out = work / f"trainer_seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    extra = ["--pipeline", args.trainer_pipeline, "--per_epoch_eval"] + (["--bf16"] if bf16 else []) + (
        ["--trainer_learning_rate", str(args.trainer_learning_rate)] if args.trainer_learning_rate else [])
    measured = run_measured(python_command("benchmarks/baselines/image_classification_trainer.py", "--recipe",
                                           RECIPE, "--output_dir", str(out), *extra, *common, "--seed", str(seed)),
                            work / f"{out.name}.log", env)
    results = json.loads((out / "trainer_results.json").read_text())
    name = f"transformers.Trainer (lr {results['learning_rate']:g}, {results['pipeline']} transforms)"
    return {"run": name, "seed": seed, **measured,
            **{k: results[k] for k in METRICS[:-1]}, "precision": "bf16" if bf16 else "no",
            "torch_threads": results["torch_threads"]}


def _summary(rows: list[dict]) -> list[dict]:
    """Mean and range over seeds of each metric, one row per side."""
    summary = []
    for name in dict.fromkeys(row["run"] for row in rows):
        runs = [row for row in rows if row["run"] == name]
        line = {"run": name, "seeds": len(runs)}
        for key in METRICS:
            values = [row[key] for row in runs]
            mean = sum(values) / len(values)
            line[key] = f"{mean:.4g}" if len(values) == 1 else f"{mean:.4g} ({min(values):.4g}-{max(values):.4g})"
            line[f"_{key}"] = mean
        summary.append(line)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", default="5")
    parser.add_argument("--trainer_learning_rate", type=float, default=None,
                        help="Trainer's one rate for all weights (default: the recipe's --learning_rate)")
    parser.add_argument("--quick", action="store_true", help="1 epoch: checks the plumbing")
    parser.add_argument("--tag", default="", help="suffix of the result file name, for variants")
    parser.add_argument("--omp_passive", action="store_true",
                        help="OMP_WAIT_POLICY=PASSIVE for both sides: idle OpenMP threads sleep instead of spinning, "
                             "which keeps a busy shared machine from slowing small ops 10-100x")
    parser.add_argument("--trainer_pipeline", choices=["timm", "suite"], default="timm",
                        help="Trainer's input pipeline: timm's own transforms, or our task's (see the baseline)")
    args = parser.parse_args()
    data = benchmark_data_dir() / "image_classification" / "hymenoptera"
    common = ["--train_dir", str(data / "train"), "--validation_dir", str(data / "validation"),
              "--num_train_epochs", "1" if args.quick else args.epochs]
    precision = resolve_mixed_precision("auto")  # what our side's --mixed_precision auto picks here
    work = Path(tempfile.mkdtemp(prefix="bench_ic_"))
    machine = machine_info()
    env = {"OMP_WAIT_POLICY": "PASSIVE"} if args.omp_passive else {}
    rows = []
    for seed in args.seeds:  # alternate the sides, so a noisy neighbour hits both alike
        rows.append({**_ours(common, work, seed, env), "load_1m_before": round(os.getloadavg()[0], 2)})
        rows.append({**_trainer(common, work, seed, args, precision == "bf16", env),
                     "load_1m_before": round(os.getloadavg()[0], 2)})
    summary = _summary(rows)
    trainer = summary[-1]
    for line in summary:
        line["speed_vs_trainer"] = ratio(line["_train_samples_per_second"], trainer["_train_samples_per_second"])
        line["memory_vs_trainer"] = ratio(line["_peak_rss_mb"], trainer["_peak_rss_mb"])
    summary = [{k: v for k, v in line.items() if not k.startswith("_")} for line in summary]
    columns = ["run", "seeds", *METRICS, "speed_vs_trainer", "memory_vs_trainer"]
    table = markdown_table(summary, columns)
    setup = {"model": "mobilenetv2 (packaged, ImageNet)", "data": str(data), "recipe": RECIPE, "precision": precision,
             "torch_threads": len(os.sched_getaffinity(0)), "cpu_has_native_bf16": cpu_has_native_bf16(),
             "omp_wait_policy": {**os.environ, **env}.get("OMP_WAIT_POLICY", "default")}
    path = write_result("image_classification" + (f"-{args.tag}" if args.tag else ""), {"machine": machine, "setup": setup, "args": vars(args),
                                                 "rows": rows, "summary": summary, "table": table})
    print(table)
    print(f"written to {path}; logs in {work}")


if __name__ == "__main__":
    main()
