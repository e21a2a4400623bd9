"""Question answering benchmark: our engine vs transformers.Trainer on XQuAD English with MiniLM.

    python -m benchmarks.question_answering [--epochs 5] [--learning_rate 1e-4] [--quick]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.common import machine_info, markdown_table, python_command, ratio, run_measured, write_result
from shared.data import benchmark_data_dir
from shared.runtime import cpu_has_native_bf16

RECIPE = "tasks/question_answering/recipes/xquad.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", default="5")
    parser.add_argument("--learning_rate", default="1e-4")
    parser.add_argument("--quick", action="store_true", help="300 training questions, 1 epoch")
    args = parser.parse_args()
    data = benchmark_data_dir() / "question_answering" / "xquad_en"
    common = ["--train_file", str(data / "train.json"), "--validation_file", str(data / "validation.json"),
              "--num_train_epochs", "1" if args.quick else args.epochs, "--learning_rate", args.learning_rate]
    if args.quick:
        common += ["--max_train_samples", "300"]
    bf16 = cpu_has_native_bf16()
    work = Path(tempfile.mkdtemp(prefix="bench_qa_"))
    out = work / "ours"
    measured = run_measured(python_command("tasks/question_answering/train.py", "--config", RECIPE, *common,
                                           "--output_dir", str(out), "--run_name", "run"), work / "ours.log")
    results = json.loads((out / "run" / "results.json").read_text())
    rows = [{"run": "ours (best epoch)", **measured, "exact_match": round(results["eval_exact_match"], 2),
             "f1": round(results["eval_f1"], 2), "last_epoch_f1": round(results["last_eval_f1"], 2),
             "train_samples_per_s": results["train_samples_per_second"], "precision": results["precision"]}]
    out = work / "trainer"
    measured = run_measured(python_command("benchmarks/baselines/question_answering_trainer.py", "--recipe", RECIPE,
                                           "--output_dir", str(out), *(["--bf16"] if bf16 else []), *common),
                            work / "trainer.log")
    results = json.loads((out / "trainer_results.json").read_text())
    rows.append({"run": "transformers.Trainer", **measured, "exact_match": round(results["eval_exact_match"], 2),
                 "f1": round(results["eval_f1"], 2), "last_epoch_f1": round(results["eval_f1"], 2),
                 "train_samples_per_s": round(results["train_samples_per_second"], 3),
                 "precision": "bf16" if bf16 else "no"})
    trainer = rows[-1]
    for row in rows:
        row["speed_vs_trainer"] = ratio(row["train_samples_per_s"], trainer["train_samples_per_s"])
        row["memory_vs_trainer"] = ratio(row["peak_rss_mb"], trainer["peak_rss_mb"])
    columns = ["run", "exact_match", "f1", "last_epoch_f1", "train_samples_per_s", "speed_vs_trainer", "peak_rss_mb",
               "memory_vs_trainer", "wall_seconds", "precision"]
    table = markdown_table(rows, columns)
    path = write_result("question_answering", {"machine": machine_info(), "args": vars(args), "rows": rows,
                                               "table": table})
    print(table)
    print(f"written to {path}; logs in {work}")


if __name__ == "__main__":
    main()
