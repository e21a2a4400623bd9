"""Test helpers: tiny learnable data and flag sets shared by the test modules."""
from __future__ import annotations

import csv
import random
from pathlib import Path

POSITIVE = ["great", "excellent", "wonderful", "superb", "lovely", "perfect"]
NEGATIVE = ["awful", "terrible", "broken", "horrible", "useless", "poor"]
NOUNS = ["kettle", "lamp", "phone", "chair", "book", "tent", "shoe", "desk"]


def toy_reviews(n: int, seed: int) -> list[tuple[str, str]]:
    """Two-class reviews whose label is decided by one sentiment word: learnable in seconds."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        word = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
        rows.append((f"the {rng.choice(NOUNS)} is {word} and {rng.choice(NOUNS)}", label))
    return rows


def write_csv(path: Path, rows: list[tuple], header=("text", "label")) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def tiny_text_args(model_dir: Path, train: Path, validation: Path, out: Path, *extra: str) -> list[str]:
    """Flags for a seconds-long text-classification run on the toy data."""
    return ["--model_name_or_path", str(model_dir), "--train_file", str(train), "--validation_file", str(validation),
            "--output_dir", str(out), "--run_name", "run", "--num_train_epochs", "8", "--learning_rate", "5e-3",
            "--per_device_train_batch_size", "16", "--warmup_ratio", "0.1", "--mixed_precision", "no",
            "--logging_steps", "2", "--seed", "0", *extra]


def launch_two_cpu_processes(script: Path, args: list[str]) -> str:
    """Run `script` under `accelerate launch` as two real CPU processes over gloo; return its stdout."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(root)}  # the subprocess imports this checkout, whichever copy pip installed
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", str(port), str(script), *args]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "processes 2" in result.stdout  # a silent fall back to one process would fail here
    return result.stdout


TIMING_KEYS = ("time_s",)


def without_timing(record: dict) -> dict:
    """A metrics.jsonl record minus wall-clock fields, which differ between otherwise identical runs."""
    return {k: v for k, v in record.items() if k not in TIMING_KEYS and not k.startswith("perf/")}


IMAGE_CLASSES = ["circle", "square", "stripes"]


def tiny_image_data(root: Path, train_per_class: int = 16, validation_per_class: int = 8) -> Path:
    """root/{train,validation}/<class>/*.png: 32x32 colour-coded shapes, learnable from scratch in seconds."""
    from tasks.image_classification.sample_data import write_image_folder

    return write_image_folder(root, {"train": train_per_class, "validation": validation_per_class}, size=32,
                              classes=IMAGE_CLASSES, colour_coded=True)


def tiny_vit_dir(out: Path) -> Path:
    """A 2-layer, 32-wide ViT for 32x32 images (random init, no dropout) with its image processor."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64)
    ViTForImageClassification(config).save_pretrained(out)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def tiny_image_args(model_dir: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """Flags for a seconds-long image-classification run: 48 images, batch 8 (6 steps per epoch), one thread
    (tiny models gain nothing from a second, and OpenMP spin-waiting slows a busy 2-core machine)."""
    return ["--model_name_or_path", str(model_dir), "--train_dir", str(data / "train"), "--validation_dir",
            str(data / "validation"), "--output_dir", str(out), "--run_name", "run", "--num_train_epochs", "4",
            "--learning_rate", "3e-3", "--per_device_train_batch_size", "8", "--crop_scale_min", "0.6",
            "--mixed_precision", "no", "--logging_steps", "3", "--seed", "0", "--cpu_threads", "1", *extra]


def assert_merged_lora_export(initial: Path, best: Path, model_class, adapted: str, head: str) -> None:
    """A LoRA run's best/ holds its adapter and plain merged weights under the starting model's names, with
    the adapted part (prefix `adapted`) and the fully trained head (prefix `head`) both changed."""
    import torch

    assert (best / "adapter" / "adapter_config.json").exists()
    before, after = (model_class.from_pretrained(path).state_dict() for path in (initial, best))
    assert before.keys() == after.keys()  # no lora_ or modules_to_save names left: loads without peft
    changed = [key for key in before if not torch.equal(before[key], after[key])]
    assert any(k.startswith(adapted) for k in changed) and any(k.startswith(head) for k in changed), changed


def build_task(name: str, *flags: str):
    """The registered task `name` built with its config parsed from `flags` (defaults otherwise)."""
    from shared.toolkit.config import parse_config
    from shared.task import get_task

    task_class = get_task(name)
    return task_class(parse_config(task_class.config_class, list(flags)))
