"""Text classification benchmark: our engine vs transformers.Trainer on Rotten Tomatoes with MiniLM.

    python benchmarks/text_classification.py [--epochs 1] [--quick]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.common import machine_info, markdown_table, python_command, ratio, run_measured, write_result
from shared.data import benchmark_data_dir
from shared.runtime import cpu_has_native_bf16

RECIPE = "tasks/text_classification/recipes/rotten_tomatoes.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", default="1")
    parser.add_argument("--quick", action="store_true", help="2,000 training rows, 1 epoch")
    args = parser.parse_args()
    data = benchmark_data_dir() / "text_classification" / "rotten_tomatoes"
    common = ["--train_file", str(data / "train.csv"), "--validation_file", str(data / "validation.csv"),
              "--num_train_epochs", "1" if args.quick else args.epochs]
    if args.quick:
        common += ["--max_train_samples", "2000"]
    bf16 = cpu_has_native_bf16()
    work = Path(tempfile.mkdtemp(prefix="bench_tc_"))
    rows = []
    for name, extra in [("ours", []), ("ours, no length grouping", ["--no_group_by_length"])]:
        out = work / name.replace(" ", "_").replace(",", "")
        measured = run_measured(python_command("tasks/text_classification/train.py", "--config", RECIPE, *common,
                                               *extra, "--output_dir", str(out), "--run_name", "run"),
                                work / f"{out.name}.log")
        results = json.loads((out / "run" / "results.json").read_text())
        rows.append({"run": name, **measured, "accuracy": round(results["eval_accuracy"], 4),
                     "f1": round(results["eval_f1"], 4),
                     "train_samples_per_s": results["train_samples_per_second"],
                     "precision": results["precision"]})
    out = work / "trainer"
    measured = run_measured(python_command("benchmarks/baselines/text_classification_trainer.py", "--recipe", RECIPE,
                                           "--output_dir", str(out), *(["--bf16"] if bf16 else []), *common),
                            work / "trainer.log")
    results = json.loads((out / "trainer_results.json").read_text())
    rows.append({"run": "transformers.Trainer", **measured, "accuracy": round(results["eval_accuracy"], 4),
                 "f1": round(results["eval_f1"], 4), "train_samples_per_s": round(results["train_samples_per_second"], 3),
                 "precision": "bf16" if bf16 else "no"})
    trainer = rows[-1]
    for row in rows:
        row["speed_vs_trainer"] = ratio(row["train_samples_per_s"], trainer["train_samples_per_s"])
        row["memory_vs_trainer"] = ratio(row["peak_rss_mb"], trainer["peak_rss_mb"])
    columns = ["run", "accuracy", "f1", "train_samples_per_s", "speed_vs_trainer", "peak_rss_mb",
               "memory_vs_trainer", "wall_seconds", "precision"]
    table = markdown_table(rows, columns)
    path = write_result("text_classification", {"machine": machine_info(), "args": vars(args), "rows": rows,
                                                "table": table})
    print(table)
    print(f"written to {path}; logs in {work}")


if __name__ == "__main__":
    main()
