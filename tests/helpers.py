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
