"""Measured runs of the training toolkit on the real benchmark data (short, for docs/toolkit.md).

    python -m benchmarks.toolkit distill   # Rotten Tomatoes: 2-layer MiniLM student alone vs distilled, 3 seeds
    python -m benchmarks.toolkit distill --student_train_samples 1000 --student_epochs 10 \
        --student_flags --learning_rate 3e-4   # the students see 1,000 labelled rows, the teacher saw all
    python -m benchmarks.toolkit export    # int8 / ONNX of the distillation teacher (run `distill` first)
    python -m benchmarks.toolkit hpo       # a 6-trial search on hymenoptera with MobileNetV2
    python -m benchmarks.toolkit lora      # LoRA vs full fine-tuning: MiniLM on Rotten Tomatoes, MobileNetV2 on hymenoptera
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchmarks.common import machine_info, markdown_table, python_command, run_measured, write_result
from shared.inputs.data import benchmark_data_dir

WORK = Path("/tmp/toolkit_bench")
TEXT_RECIPE = "tasks/text_classification/recipes/rotten_tomatoes.yaml"


def _text_data() -> list[str]:
    data = benchmark_data_dir() / "text_classification" / "rotten_tomatoes"
    return ["--train_file", str(data / "train.csv"), "--validation_file", str(data / "validation.csv")]


def _image_data() -> list[str]:
    data = benchmark_data_dir() / "image_classification" / "hymenoptera"
    return ["--train_dir", str(data / "train"), "--validation_dir", str(data / "validation")]


def _train(task: str, name: str, *args: str) -> dict:
    out = WORK / name
    measured = run_measured(python_command(f"tasks/{task}/train.py", *args, "--output_dir", str(out), "--run_name",
                                           "run", "--save_strategy", "no"), WORK / f"{name}.log")
    results = json.loads((out / "run" / "results.json").read_text())
    keep = {k: round(v, 4) for k, v in results.items() if k in ("eval_accuracy", "eval_f1", "train_samples_per_second")}
    return {"run": name, **measured, **keep}


def make_student(layers: int) -> Path:
    """MiniLM cut to its first `layers` transformer layers (a smaller student sharing the tokenizer)."""
    from transformers import AutoModel, AutoTokenizer

    from shared.toolkit.models import resolve_model

    out = WORK / f"minilm_l{layers}"
    model = AutoModel.from_pretrained(resolve_model("minilm"))
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(resolve_model("minilm")).save_pretrained(out)
    return out


def distill(seeds: list[int], epochs: int, alpha: float, temperature: float, samples: int | None,
            extra: list[str]) -> list[dict]:
    """A 2-layer student alone and distilled from the 6-layer teacher, same seeds, same epochs."""
    common = ["--config", TEXT_RECIPE, *_text_data()]
    teacher_dir = WORK / "teacher_minilm_l6" / "run" / "best"
    rows = [] if teacher_dir.exists() else [_train("text_classification", "teacher_minilm_l6", *common)]
    student = str(make_student(2))
    student_flags = [*common, "--model_name_or_path", student, "--num_train_epochs", str(epochs),
                     *(["--max_train_samples", str(samples)] if samples else []), *extra]
    size = f"_n{samples}" if samples else ""
    for seed in seeds:
        rows.append(_train("text_classification", f"student_l2_alone{size}_seed{seed}", *student_flags,
                           "--seed", str(seed)))
        name = f"student_l2_distilled{size}_a{alpha:g}_t{temperature:g}_seed{seed}"
        rows.append(_train("text_classification", name, *student_flags, "--seed", str(seed),
                           "--teacher_model", str(teacher_dir), "--distill_alpha", str(alpha),
                           "--distill_temperature", str(temperature)))
    for kind in ("alone", "distilled"):
        scores = [row["eval_accuracy"] for row in rows if f"_{kind}_" in row["run"]]
        rows.append({"run": f"student_l2_{kind} mean of {len(scores)}", "eval_accuracy": round(statistics.mean(scores), 4),
                     "std": round(statistics.pstdev(scores), 4)})
    return rows


def export() -> list[dict]:
    from shared.serving.export import export as run_export

    import tasks  # noqa: F401

    report = run_export(WORK / "teacher_minilm_l6" / "run" / "best", "dynamic-int8", onnx=True)
    return [{"form": form, **report[form]} for form in ("fp32", "dynamic_int8", "onnx")]


def hpo() -> list[dict]:
    name = "hpo_hymenoptera"
    measured = run_measured(python_command(
        "tasks/image_classification/train.py", *_image_data(), "--hpo_trials", "6", "--num_train_epochs", "3",
        "--output_dir", str(WORK), "--run_name", name), WORK / f"{name}.log")
    print((WORK / name / "study.md").read_text())
    best = json.loads((WORK / name / "best_trial.json").read_text())
    return [{"run": name, **measured, "best_accuracy": round(best["best_metric"], 4), **best["best_params"]}]


def lora() -> list[dict]:
    text = ["--config", TEXT_RECIPE, *_text_data()]
    rows = [_train("text_classification", "text_full", *text),
            _train("text_classification", "text_lora", *text, "--use_peft", "--learning_rate", "5e-4"),
            _train("image_classification", "image_full", *_image_data()),
            _train("image_classification", "image_lora", *_image_data(), "--use_peft")]
    for row in rows:
        log = (WORK / f"{row['run']}.log").read_text()
        trainable = [line for line in log.splitlines() if line.startswith("LoRA r=")]
        row["lora"] = trainable[0] if trainable else "full fine-tuning"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["distill", "export", "hpo", "lora"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="distill: student seeds")
    parser.add_argument("--student_epochs", type=int, default=3, help="distill: epochs of both students")
    parser.add_argument("--distill_alpha", type=float, default=0.5, help="distill: weight of the teacher term")
    parser.add_argument("--distill_temperature", type=float, default=2.0, help="distill: softmax temperature")
    parser.add_argument("--student_train_samples", type=int, default=None,
                        help="distill: the students see only this many labelled rows (the teacher saw all)")
    parser.add_argument("--student_flags", nargs=argparse.REMAINDER, default=[],
                        help="distill: further training flags for both students (last on the line)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    run = {"distill": lambda: distill(args.seeds, args.student_epochs, args.distill_alpha,
                                           args.distill_temperature, args.student_train_samples,
                                           args.student_flags), "export": export, "hpo": hpo, "lora": lora}
    rows = run[args.what]()
    table = markdown_table(rows, list(dict.fromkeys(k for row in rows for k in row)))
    tag = (f"-n{args.student_train_samples or 'all'}-a{args.distill_alpha:g}-t{args.distill_temperature:g}"
           f"-e{args.student_epochs}" if args.what == "distill" else "")
    path = write_result(f"toolkit-{args.what}{tag}", {"machine": machine_info(), "rows": rows, "table": table})
    print(table)
    print(f"written to {path}; logs in {WORK}")


if __name__ == "__main__":
    main()
