"""Semantic segmentation benchmark: our engine vs transformers.Trainer on CamVid, UperNet on the packaged MobileNetV2.

    flock /tmp/finetune_train.lock python -m benchmarks.semantic_segmentation [--quick]

Both sides train the same model (UperNet, hidden 128, no auxiliary head, ImageNet MobileNetV2) on the same 367
images and are scored on the same 101 validation images, one after the other in one run. Trainer runs the
issue's reference setting (batch 4 at 360x480, AdamW lr 3e-4, polynomial decay, fp32, 450 steps); ours runs
tasks/semantic_segmentation/recipes/camvid.yaml, whose step count is chosen so that its wall time stays within
Trainer's. Reported: validation mean IoU, pixel accuracy and per-class IoU of the final model, wall seconds of
the whole process, training samples/s and peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from benchmarks.common import machine_info, markdown_table, python_command, ratio, run_measured, write_result
from shared.data import benchmark_data_dir
from shared.runtime import cpu_has_native_bf16

RECIPE = "tasks/semantic_segmentation/recipes/camvid.yaml"


def _ours(work: Path, extra: list[str], name: str) -> dict:
    out = work / name
    # one evaluation, after the last step (as Trainer's side): the final model's per-class IoU is then reported
    measured = run_measured(python_command("tasks/semantic_segmentation/train.py", "--config", RECIPE, *extra,
                                           "--eval_steps", "1000000", "--output_dir", str(out), "--run_name", "run"),
                            work / f"{name}.log")
    results = json.loads((out / "run" / "results.json").read_text())
    return {"run": "ours", "recipe_text": (Path(__file__).resolve().parents[1] / RECIPE).read_text(),
            "extra_flags": extra, **measured, "steps": results["global_step"],
            "mean_iou": results["last_eval_mean_iou"], "pixel_accuracy": results["last_eval_pixel_accuracy"],
            "per_class_iou": results["eval_per_class_iou"], "train_runtime": results["train_runtime"],
            "train_samples_per_s": results["train_samples_per_second"], "precision": results["precision"],
            "run_dir": str(out / "run")}


def _trainer(work: Path, extra: list[str], steps: int) -> dict:
    out = work / "trainer"
    out.mkdir(parents=True, exist_ok=True)
    measured = run_measured(python_command("benchmarks/baselines/semantic_segmentation_trainer.py", "--recipe", RECIPE,
                                           "--output_dir", str(out), "--max_steps", str(steps), *extra),
                            work / "trainer.log")
    results = json.loads((out / "trainer_results.json").read_text())
    return {"run": "transformers.Trainer", **measured, "steps": results["global_step"],
            "mean_iou": results["eval_mean_iou"], "pixel_accuracy": results["eval_pixel_accuracy"],
            "per_class_iou": results["eval_per_class_iou"], "train_runtime": round(results["train_runtime"], 1),
            "train_samples_per_s": round(results["train_samples_per_second"], 3), "precision": "no"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trainer_steps", type=int, default=450)
    parser.add_argument("--ours", nargs="*", default=[], help="extra flags for our side (recipe variants)")
    parser.add_argument("--quick", action="store_true", help="20 steps a side on 8 validation images: plumbing only")
    parser.add_argument("--tag", default="", help="suffix of the result file name, for variants")
    args = parser.parse_args()
    data = benchmark_data_dir() / "semantic_segmentation" / "camvid"
    common = ["--train_dir", str(data / "train"), "--validation_dir", str(data / "validation")]
    if args.quick:
        common += ["--max_eval_samples", "8"]
    work = Path(tempfile.mkdtemp(prefix="bench_seg_"))
    rows = [{**_trainer(work, common, 20 if args.quick else args.trainer_steps),
             "load_1m_before": round(os.getloadavg()[0], 2)}]
    ours_extra = common + args.ours + (["--max_train_steps", "20", "--eval_strategy", "no"] if args.quick else [])
    rows.append({**_ours(work, ours_extra, "ours"), "load_1m_before": round(os.getloadavg()[0], 2)})
    trainer = rows[0]
    for row in rows:
        row["speed_vs_trainer"] = ratio(row["train_samples_per_s"], trainer["train_samples_per_s"])
        row["wall_vs_trainer"] = ratio(row["wall_seconds"], trainer["wall_seconds"])
    columns = ["run", "steps", "mean_iou", "pixel_accuracy", "wall_seconds", "wall_vs_trainer", "train_runtime",
               "train_samples_per_s", "speed_vs_trainer", "peak_rss_mb", "precision"]
    table = markdown_table([{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()} for row in rows],
                           columns)
    labels = json.loads((data / "labels.json").read_text())["id2label"]
    per_class = [{"class": labels[str(i)], **{row["run"]: None if row["per_class_iou"] is None or
                  row["per_class_iou"][i] is None else round(row["per_class_iou"][i], 3) for row in rows}}
                 for i in range(len(labels))]
    class_table = markdown_table(per_class, ["class"] + [row["run"] for row in rows])
    setup = {"model": "UperNet hidden 128, no auxiliary head, packaged MobileNetV2 (ImageNet)", "data": str(data),
             "recipe": RECIPE, "torch_threads": len(os.sched_getaffinity(0)), "cpu_has_native_bf16": cpu_has_native_bf16()}
    path = write_result("semantic_segmentation" + (f"-{args.tag}" if args.tag else ""),
                        {"machine": machine_info(), "setup": setup, "args": vars(args), "rows": rows, "table": table,
                         "per_class_table": class_table})
    print(table)
    print(class_table)
    print(f"written to {path}; logs in {work}")


if __name__ == "__main__":
    main()
