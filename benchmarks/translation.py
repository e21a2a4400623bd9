"""Translation benchmark: our engine vs Seq2SeqTrainer on Multi30k de -> en, small Marian from scratch.

    python -m benchmarks.translation [--epochs 3] [--quick]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.common import machine_info, markdown_table, python_command, ratio, run_measured, write_result
from shared.data import benchmark_data_dir
from shared.runtime import cpu_has_native_bf16

RECIPE = "tasks/translation/recipes/multi30k.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", default="3")
    parser.add_argument("--quick", action="store_true", help="3,000 training pairs, 200 validation pairs, 1 epoch")
    args = parser.parse_args()
    data = benchmark_data_dir() / "translation" / "multi30k_de_en"
    common = ["--train_file", str(data / "train.jsonl"), "--validation_file", str(data / "validation.jsonl"),
              "--num_train_epochs", "1" if args.quick else args.epochs]
    if args.quick:
        common += ["--max_train_samples", "3000", "--max_eval_samples", "200"]
    bf16 = cpu_has_native_bf16()
    work = Path(tempfile.mkdtemp(prefix="bench_mt_"))
    out = work / "ours"
    # Evaluate once, at the end, as the Trainer run does: generation is the costly part of an eval
    # (eval_strategy "no" would skip the final evaluation too; steps beyond the run leave only that one).
    measured = run_measured(python_command("tasks/translation/train.py", "--config", RECIPE, *common,
                                           "--eval_strategy", "steps", "--eval_steps", "1000000000",
                                           "--save_strategy", "no",
                                           "--output_dir", str(out), "--run_name", "run"), work / "ours.log")
    results = json.loads((out / "run" / "results.json").read_text())
    rows = [{"run": "ours", **measured, "bleu": round(results["last_eval_bleu"], 2),
             "chrf": round(results["last_eval_chrf"], 2), "train_samples_per_s": results["train_samples_per_second"],
             "precision": results["precision"]}]
    out = work / "trainer"
    measured = run_measured(python_command("benchmarks/baselines/translation_trainer.py", "--recipe", RECIPE,
                                           "--output_dir", str(out), *(["--bf16"] if bf16 else []), *common),
                            work / "trainer.log")
    results = json.loads((out / "trainer_results.json").read_text())
    rows.append({"run": "Seq2SeqTrainer", **measured, "bleu": round(results["eval_bleu"], 2),
                 "chrf": round(results["eval_chrf"], 2),
                 "train_samples_per_s": round(results["train_samples_per_second"], 3),
                 "precision": "bf16" if bf16 else "no"})
    trainer = rows[-1]
    for row in rows:
        row["speed_vs_trainer"] = ratio(row["train_samples_per_s"], trainer["train_samples_per_s"])
        row["memory_vs_trainer"] = ratio(row["peak_rss_mb"], trainer["peak_rss_mb"])
    columns = ["run", "bleu", "chrf", "train_samples_per_s", "speed_vs_trainer", "peak_rss_mb", "memory_vs_trainer",
               "wall_seconds", "precision"]
    table = markdown_table(rows, columns)
    path = write_result("translation", {"machine": machine_info(), "args": vars(args), "rows": rows, "table": table})
    print(table)
    print(f"written to {path}; logs in {work}")


if __name__ == "__main__":
    main()
