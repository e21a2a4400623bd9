"""GPU speed and memory, our engine against transformers.Trainer on the same model shape, data and settings.

Text: a random-init BERT of MiniLM's shape (6 layers, hidden 384, 12 heads, FFN 1536, vocab 30522); images:
the packaged MobileNetV2. Each side runs alone on the GPU under benchmarks/gpu/measure.py, one after the other.
"""
from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.gpu.fixtures import minilm_shape
from benchmarks.gpu.jobs import ROOT, Job

# Dense bf16 tensor-core peaks in TFLOP/s. Spec-sheet values (SXM/PCIe as named) unless marked measured.
PEAK_BF16_TFLOPS = {
    "H200": (790.0, "8192^3 bf16 matmul as measured on the lent H200, ../shared/STACK_NOTES.md (spec sheet 989)"),
    "H100 SXM": (989.0, "spec sheet"), "H100 PCIe": (756.0, "spec sheet"), "H100": (989.0, "spec sheet (SXM)"),
    "A100": (312.0, "spec sheet"), "L40S": (362.0, "spec sheet"), "L4": (121.0, "spec sheet"),
    "A10": (125.0, "spec sheet"), "RTX 4090": (165.0, "spec sheet (FP32 accumulate)"),
}
RECIPES = {"text_classification": "tasks/text_classification/recipes/rotten_tomatoes.yaml",
           "image_classification": "tasks/image_classification/recipes/hymenoptera.yaml"}


@dataclass
class SpeedPair:
    task: str
    flags: list[str]  # model, data, batch, epochs: the same on both sides
    ours: Job
    trainer: Job
    measured: dict  # side -> measure.py's json path


def peak_tflops(gpu_name: str, override: float | None) -> tuple[float | None, str]:
    if override:
        return override, "given with --peak_tflops"
    for name, (value, source) in PEAK_BF16_TFLOPS.items():  # most specific names first
        if name in gpu_name:
            return value, source
    return None, f"unknown GPU {gpu_name!r}: give --peak_tflops"


def measured_matmul_tflops() -> float | None:
    """bf16 8192^3 matmul on this GPU: mean of ten after three warm-ups (the table's H200 method)."""
    import torch

    if not torch.cuda.is_available():
        return None
    a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return round(2 * 8192 ** 3 * 10 / (start.elapsed_time(end) / 1000) / 1e12, 1)


def _long_reviews(n: int, seed: int) -> list[tuple[str, str]]:
    """One to eight sample reviews of one label per row: lengths from ~10 to ~120 tokens, as real reviews vary."""
    from tasks.text_classification.sample_data import LABELS, review

    rng = random.Random(seed)
    return [(" ".join(review(rng, label) for _ in range(rng.randint(1, 8))), label)
            for label in (LABELS[i % 3] for i in range(n))]


def _pair(task: str, flags: list[str], work: Path, precision: str) -> SpeedPair:
    recipe, logs = RECIPES[task], work / "logs"
    # One GPU for both sides: with several visible, Trainer alone would spread the batch over all of them.
    env = {} if precision == "no" else {"CUDA_VISIBLE_DEVICES": "0"}
    measure = [sys.executable, str(ROOT / "benchmarks" / "gpu" / "measure.py")]
    measured = {side: work / "speed" / f"{task}-{side}.json" for side in ("ours", "trainer")}
    ours = Job(f"speed {task} ours", [*measure, str(measured["ours"]), str(ROOT / f"tasks/{task}/train.py"), "--config",
                                      recipe, *flags, "--mixed_precision", precision, "--eval_strategy", "end",
                                      "--save_strategy", "no", "--output_dir", str(work / "speed" / f"{task}-ours"),
                                      "--run_name", "run"], logs / f"speed-{task}-ours.log", timeout_s=240, env=env)
    out = work / "speed" / f"{task}-trainer"
    out.mkdir(parents=True, exist_ok=True)
    trainer = Job(f"speed {task} Trainer", [*measure, str(measured["trainer"]),
                                            str(ROOT / f"benchmarks/baselines/{task}_trainer.py"), "--recipe", recipe,
                                            "--output_dir", str(out), *(["--bf16"] if precision == "bf16" else []),
                                            *flags], logs / f"speed-{task}-trainer.log", timeout_s=240, env=env)
    return SpeedPair(task, flags, ours, trainer, measured)


def pairs(work: Path, dry_run: bool, rows: int, batch: int) -> list[SpeedPair]:
    """The text pair always; the image pair on the GPU only (a dry run has no packaged weights offline)."""
    from tasks.text_classification.sample_data import write

    data = work / "speed" / "data"
    data.mkdir(parents=True, exist_ok=True)
    write(data / "train.csv", _long_reviews(rows, 0))
    write(data / "validation.csv", _long_reviews(max(64, rows // 20), 1))
    model = minilm_shape(work / "speed" / "minilm_shape", [t for t, _ in _long_reviews(2000, 2)])
    precision = "no" if dry_run else "bf16"
    text = ["--model_name_or_path", str(model), "--train_file", str(data / "train.csv"), "--validation_file",
            str(data / "validation.csv"), "--per_device_train_batch_size", str(batch), "--num_train_epochs", "1"]
    found = [_pair("text_classification", text, work, precision)]
    if not dry_run:
        from tasks.image_classification.sample_data import write_image_folder

        # 128 px: the processor resizes to 224 either way, and small files keep the decode from dominating
        images = write_image_folder(data / "images", {"train": 160, "validation": 16}, size=128)  # x 4 classes
        found.append(_pair("image_classification", [
            "--model_name_or_path", "mobilenetv2", "--train_dir", str(images / "train"), "--validation_dir",
            str(images / "validation"), "--per_device_train_batch_size", "64", "--num_train_epochs", "3",
            "--dataloader_num_workers", "6"], work, precision))
    return found


def text_flops(tokens: int, token_squares: int) -> float:
    """Training FLOPs of the MiniLM-shaped encoder: 6 x matmul parameters x tokens (forward and backward),
    plus attention scores and values, 12 x layers x hidden x length^2 per sequence. Embedding lookups excluded."""
    layers, hidden, ffn = 6, 384, 1536
    matmul_params = layers * (4 * hidden * hidden + 2 * hidden * ffn)
    return 6 * matmul_params * tokens + 12 * layers * hidden * token_squares


def verify(pair: SpeedPair, work: Path, peak: float | None) -> list[dict]:
    rows = []
    for side, job in (("ours", pair.ours), ("transformers.Trainer", pair.trainer)):
        row = {"task": pair.task, "side": side, "seconds": round(job.seconds, 1)}
        if not job.ok:
            rows.append({**row, "failures": [job.describe()], "log_tail": job.tail()})
            continue
        measured = json.loads(pair.measured["ours" if side == "ours" else "trainer"].read_text())
        if side == "ours":
            results = json.loads((work / "speed" / f"{pair.task}-ours" / "run" / "results.json").read_text())
            runtime, precision = results["train_runtime"], results["precision"]
            samples_per_s, steps = results["train_samples_per_second"], results["global_step"]
        else:
            results = json.loads((work / "speed" / f"{pair.task}-trainer" / "trainer_results.json").read_text())
            runtime, samples_per_s = results["train_runtime"], results["train_samples_per_second"]
            steps, precision = results["global_step"], "bf16" if "--bf16" in job.command else "no"
        row.update(samples_per_s=round(samples_per_s, 1), train_runtime_s=round(runtime, 2), steps=steps,
                   precision=precision, max_memory_allocated_mb=measured["max_memory_allocated_mb"],
                   peak_rss_mb=measured["peak_rss_mb"], failures=[])
        if pair.task == "text_classification" and measured["train_tokens"]:
            flops = text_flops(measured["train_tokens"], measured["train_token_squares"])
            row.update(train_tokens=measured["train_tokens"], tflops_per_s=round(flops / runtime / 1e12, 2))
            row["mfu"] = round(flops / runtime / (peak * 1e12), 4) if peak else None
        rows.append(row)
    if len(rows) == 2 and not rows[0]["failures"] and not rows[1]["failures"]:
        for key in ("samples_per_s", "max_memory_allocated_mb"):
            ours, theirs = rows[0].get(key), rows[1].get(key)
            rows[0][f"{key}_vs_trainer"] = round(ours / theirs, 3) if ours and theirs else None
    return rows
