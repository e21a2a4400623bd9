"""predict.py on text: peak memory over 1,000 vs 100,000 rows, and speed against a plain pipeline loop at batch 32.

    python benchmarks/predict_memory.py [--rows 1000 100000] [--speed_rows 1066] [--repeats 2]

Memory: each row count is predicted in a fresh process (a 2-layer, 64-wide BERT on MiniLM's tokenizer, random init:
the loop, not the model, is what is measured). Speed: MiniLM with a new two-label head, Rotten Tomatoes validation
texts, batch 32, max length 128, fp32; `tasks/text_classification/predict.py` against
`pipeline("text-classification", top_k=None)(texts, batch_size=32)` writing the same CSV, each from loading the
model to the last row written (process start-up and imports apart: `wall_seconds` has them), alternated in one run.

    python benchmarks/predict_memory.py --images 1000 10000

Images: `tasks/image_classification/predict.py` over a folder of N generated 48x48 JPEGs (seeded noise and a shape,
unlabelled: what a user predicts), a 2-layer, 32-wide ViT at 32x32, random init, batch 32, fp32, each count in a
fresh process; peak RSS per count, and the CSV's row count checked against N. Written to `predict_memory-images`.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from benchmarks.common import machine_info, python_command, run_measured, write_result  # noqa: E402
from shared.inputs.data import benchmark_data_dir  # noqa: E402


def _texts() -> list[str]:
    with (benchmark_data_dir() / "text_classification" / "rotten_tomatoes" / "validation.csv").open() as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def _write_rows(path: Path, texts: list[str], count: int) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        writer.writerows([texts[i % len(texts)]] for i in range(count))
    return path


def _models(tmp: Path) -> tuple[Path, Path]:
    """(a small random BERT, MiniLM with a new head), both with MiniLM's tokenizer, saved for predict.py."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

    from shared.toolkit.models import resolve_model

    minilm = resolve_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    labels = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}
    torch.manual_seed(0)
    small = BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64,
                                                     num_hidden_layers=2, num_attention_heads=2,
                                                     intermediate_size=128, **labels))
    full = AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=2, **labels)
    for model, folder in ((small, tmp / "small"), (full, tmp / "minilm")):
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return tmp / "small", tmp / "minilm"


def _ours(model: Path, source: Path, output: Path) -> list[str]:
    return python_command("tasks/text_classification/predict.py", "--model_name_or_path", str(model), "--input",
                          str(source), "--output", str(output), "--per_device_eval_batch_size", "32",
                          "--max_seq_length", "128", "--mixed_precision", "no")


PIPELINE_LOOP = """
import csv, sys, time
from transformers import pipeline
model, source, output = sys.argv[1:4]
pipe = pipeline("text-classification", model=model, top_k=None)
started = time.perf_counter()  # as predict.py's rate: from the model loaded to the last row written
texts = [row["text"] for row in csv.DictReader(open(source))]
with open(output, "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["text", "label", "score_negative", "score_positive"])
    for text, scores in zip(texts, pipe(texts, batch_size=32, truncation=True, max_length=128)):
        by_label = {s["label"]: s["score"] for s in scores}
        writer.writerow([text, max(by_label, key=by_label.get), by_label["negative"], by_label["positive"]])
print(f"({len(texts)} inputs in {time.perf_counter() - started:.3f} s")
"""


def _theirs(model: Path, source: Path, output: Path) -> list[str]:
    return [sys.executable, "-c", PIPELINE_LOOP, str(model), str(source), str(output)]


def _loop_seconds(log: Path) -> float:
    """Seconds from the model loaded to the last row written, as each side prints it."""
    return float(re.findall(r"\((?:\d+) inputs in ([0-9.]+) s", log.read_text())[-1])


def _agreement(ours: Path, theirs: Path) -> float:
    read = lambda path: [row["label"] for row in csv.DictReader(path.open())]
    a, b = read(ours), read(theirs)
    assert len(a) == len(b), (len(a), len(b))
    return sum(x == y for x, y in zip(a, b)) / len(a)


def _images(folder: Path, count: int) -> Path:
    """`count` small seeded JPEGs (noise, and a bright square whose place varies), in one unlabelled folder."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 120, (48, 48, 3), dtype=np.uint8)
        x, y = rng.integers(0, 32, 2)
        pixels[y:y + 16, x:x + 16] = 230
        Image.fromarray(pixels).save(folder / f"{index:06d}.jpg", quality=85)
    return folder


def tiny_vit(folder: Path) -> Path:
    """A 2-layer, 32-wide ViT for 32x32 inputs with four labels, random init, saved as predict.py loads it."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    names = ["circle", "square", "stripes", "triangle"]
    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, id2label=dict(enumerate(names)),
                       label2id={n: i for i, n in enumerate(names)})
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def image_memory(counts: list[int]) -> dict:
    """Peak RSS of image_classification/predict.py over each count of images, each in a fresh process."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        model = tiny_vit(tmp / "vit")
        for count in counts:
            images = _images(tmp / f"images_{count}", count)
            output, log = tmp / f"out_{count}.csv", tmp / f"log_{count}.txt"
            command = python_command("tasks/image_classification/predict.py", "--model_name_or_path", str(model),
                                     "--input", str(images), "--output", str(output), "--per_device_eval_batch_size",
                                     "32", "--mixed_precision", "no")
            measured = run_measured(command, log)
            loop = _loop_seconds(log)
            written = sum(1 for _ in csv.DictReader(output.open()))
            rows.append({"images": count, "rows_written": written, **measured, "loop_seconds": round(loop, 2),
                         "loop_images_per_second": round(count / loop, 1)})
            print(rows[-1], flush=True)
            shutil.rmtree(images)  # the next count's folder replaces it on disk
    return {"memory": rows, "peak_rss_ratio_last_to_first": round(rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"], 3)}


def text_runs(args) -> dict:
    texts = _texts()
    result = {"memory": [], "speed": []}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        small, minilm = _models(tmp)
        for count in args.rows:
            source = _write_rows(tmp / f"rows_{count}.csv", texts, count)
            measured = run_measured(_ours(small, source, tmp / f"out_{count}.csv"), tmp / f"log_{count}.txt")
            result["memory"].append({"rows": count, **measured, "rows_per_second": round(count / measured["wall_seconds"], 1)})
            print(result["memory"][-1], flush=True)
        source = _write_rows(tmp / "speed.csv", texts, args.speed_rows)
        for repeat in range(args.repeats):
            for name, command in (("predict.py", _ours), ("pipeline loop", _theirs)):
                output = tmp / f"speed_{name.split()[0]}.csv"
                log = tmp / f"speed_{repeat}.txt"
                measured = run_measured(command(minilm, source, output), log)
                loop = _loop_seconds(log)
                result["speed"].append({"side": name, "repeat": repeat, "rows": args.speed_rows, **measured,
                                        "loop_seconds": round(loop, 2),
                                        "loop_rows_per_second": round(args.speed_rows / loop, 1)})
                print(result["speed"][-1], flush=True)
        result["label_agreement"] = _agreement(tmp / "speed_predict.py.csv", tmp / "speed_pipeline.csv")
    return result


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="*", default=[1000, 100000])
    parser.add_argument("--speed_rows", type=int, default=1066)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--images", type=int, nargs="+", help="Image counts: the image memory run instead of text")
    parser.add_argument("--result", help="Result JSON path (default results/<date>-<machine>-predict_memory[-images].json)")
    args = parser.parse_args(argv)
    command = " ".join(["python", "benchmarks/predict_memory.py", *(sys.argv[1:] if argv is None else argv)])
    result = {"machine": machine_info(), "command": command,
              **(image_memory(args.images) if args.images else text_runs(args))}
    if args.result:
        path = Path(args.result)
        path.write_text(json.dumps(result, indent=1))
    else:
        path = write_result("predict_memory-images" if args.images else "predict_memory", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    return path


if __name__ == "__main__":
    started = time.perf_counter()
    print(f"written to {main()} in {time.perf_counter() - started:.0f} s")
