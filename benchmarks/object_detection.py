"""Object detection benchmark: our engine vs transformers.Trainer on Raccoon with the dense head on packaged MobileNetV2.

    flock /tmp/finetune_train.lock python -m benchmarks.object_detection [--epochs 20] [--seeds 0] [--quick]
    flock /tmp/finetune_train.lock python -m benchmarks.object_detection --architecture rt_detr --only ours --tag rt_detr

Each side runs in its own process, one after the other, on the same images, model, transforms, batch size,
optimizer groups, precision and epochs; each reports validation mAP and mAP@0.5 after the last epoch and at its
best epoch (by mAP), training samples/s (the whole loop, per-epoch evaluations included) and peak RSS.
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

RECIPE = "tasks/object_detection/recipes/raccoon.yaml"
METRICS = ["last_eval_map_50", "last_eval_map", "eval_map_50", "eval_map", "global_step", "train_samples_per_second",
           "wall_seconds", "peak_rss_mb"]


def _ours(common: list[str], work: Path, seed: int) -> dict:
    out = work / f"ours_seed{seed}"
    measured = run_measured(python_command("tasks/object_detection/train.py", "--config", RECIPE, *common,
                                           "--seed", str(seed), "--output_dir", str(out), "--run_name", "run"),
                            work / f"{out.name}.log")
    results = json.loads((out / "run" / "results.json").read_text())
    keys = ["last_eval_map_50", "last_eval_map", "eval_map_50", "eval_map", "global_step", "train_samples_per_second"]
    return {"run": "ours", "seed": seed, **measured, **{k: results[k] for k in keys}, "precision": results["precision"]}


def _trainer(common: list[str], work: Path, seed: int, bf16: bool) -> dict:
    out = work / f"trainer_seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    measured = run_measured(python_command("benchmarks/baselines/object_detection_trainer.py", "--recipe", RECIPE,
                                           "--output_dir", str(out), "--per_epoch_eval", *(["--bf16"] if bf16 else []), *common,
                                           "--seed", str(seed)), work / f"{out.name}.log")
    results = json.loads((out / "trainer_results.json").read_text())
    keys = ["last_eval_map_50", "last_eval_map", "eval_map_50", "eval_map", "global_step", "train_samples_per_second"]
    return {"run": "transformers.Trainer", "seed": seed, **measured, **{k: results[k] for k in keys},
            "precision": "bf16" if bf16 else "no"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", default="20")
    parser.add_argument("--architecture", default="dense", choices=["dense", "conditional_detr", "rt_detr"])
    parser.add_argument("--only", choices=["ours", "trainer"], default=None, help="run one side only")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further flags for both sides")
    parser.add_argument("--quick", action="store_true", help="1 epoch: checks the plumbing")
    parser.add_argument("--tag", default="", help="suffix of the result file name, for variants")
    args = parser.parse_args()
    data = benchmark_data_dir() / "object_detection" / "raccoon"
    common = ["--train_dir", str(data / "train"), "--validation_dir", str(data / "validation"),
              "--architecture", args.architecture, "--num_train_epochs", "1" if args.quick else args.epochs, *args.extra]
    precision = resolve_mixed_precision("auto")  # what our side's --mixed_precision auto picks here
    work = Path(tempfile.mkdtemp(prefix="bench_od_"))
    rows = []
    for seed in args.seeds:
        if args.only != "trainer":
            rows.append({**_ours(common, work, seed), "load_1m_before": round(os.getloadavg()[0], 2)})
        if args.only != "ours":
            rows.append({**_trainer(common, work, seed, precision == "bf16"),
                         "load_1m_before": round(os.getloadavg()[0], 2)})
    if len(rows) >= 2:
        for row in rows:
            row["speed_vs_trainer"] = ratio(row["train_samples_per_second"], rows[-1]["train_samples_per_second"])
    table = markdown_table(rows, ["run", "seed", *METRICS, "speed_vs_trainer"])
    setup = {"model": f"{args.architecture} head on mobilenetv2 (packaged, ImageNet)", "data": str(data),
             "recipe": RECIPE, "precision": precision, "torch_threads": len(os.sched_getaffinity(0)),
             "cpu_has_native_bf16": cpu_has_native_bf16()}
    name = "object_detection" + (f"-{args.tag}" if args.tag else "")
    path = write_result(name, {"machine": machine_info(), "setup": setup, "args": vars(args), "rows": rows,
                               "table": table})
    print(table)
    print(f"written to {path}; logs in {work}")


if __name__ == "__main__":
    main()
