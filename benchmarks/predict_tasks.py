"""What benchmarks/predict_speed.py needs per task: the inputs (real validation data from ../shared/data, written
in a format predict.py reads unlabelled), the settings that make the pipeline loop do predict.py's work, and a
reader of each side's output for the agreement check.

Inputs are unlabelled on purpose: the models are trained on each task's embedded sample, whose labels are not the
benchmark data's, and an unlabelled input is what a user predicts (no metrics computed on either side).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

import yaml

from shared.inputs.data import benchmark_data_dir

TASKS = ("text_classification", "question_answering", "translation", "image_classification", "object_detection",
         "semantic_segmentation", "token_classification")
# inputs per task: about 25-40 s of predicting per side on 2 cores, so 7 tasks x 2 sides fit in about 12 minutes
COUNTS = {"text_classification": 1066, "question_answering": 265, "translation": 300, "image_classification": 153,
          "object_detection": 80, "semantic_segmentation": 101, "token_classification": 1000}
OUTPUTS = {"text_classification": "predictions.csv", "question_answering": "predictions.json",
           "translation": "translations.txt", "image_classification": "predictions.csv",
           "object_detection": "detections.json", "semantic_segmentation": "masks",
           "token_classification": "predictions.conll"}


def _cycled(items: list, count: int) -> list:
    """The first `count` items, starting over when there are fewer (so any count can be asked for)."""
    if not items:
        raise ValueError("no benchmark inputs found")
    return [items[i % len(items)] for i in range(count)]


def _image_folder(images: list[Path], count: int, folder: Path) -> Path:
    """A flat folder of links to the images (a class-subfolder or COCO folder would make the input labelled)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(_cycled(sorted(images), count)):
        (folder / f"{index:05d}_{image.name}").symlink_to(image)
    return folder


def _text(count: int, folder: Path) -> Path:
    with (benchmark_data_dir() / "text_classification" / "rotten_tomatoes" / "validation.csv").open() as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    path = folder / "texts.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        writer.writerows([t] for t in _cycled(texts, count))
    return path


def _questions(count: int, folder: Path) -> Path:
    squad = json.loads((benchmark_data_dir() / "question_answering" / "xquad_en" / "validation.json").read_text())
    rows = [{"question": q["question"], "context": p["context"], "id": q["id"]}
            for article in squad["data"] for p in article["paragraphs"] for q in p["qas"]]
    path = folder / "questions.jsonl"
    path.write_text("".join(json.dumps({**row, "id": f"{i}-{row['id']}"}) + "\n"
                            for i, row in enumerate(_cycled(rows, count))))
    return path


def _sources(count: int, folder: Path) -> Path:
    lines = (benchmark_data_dir() / "translation" / "multi30k_de_en" / "validation.jsonl").read_text().splitlines()
    path = folder / "sources.txt"
    path.write_text("".join(s + "\n" for s in _cycled([json.loads(l)["translation"]["de"].strip() for l in lines], count)),
                    encoding="utf-8")
    return path


def _sentences(count: int, folder: Path) -> Path:
    text = (benchmark_data_dir() / "token_classification" / "wikiann_en" / "validation.conll").read_text()
    sentences = [[line.split("\t")[0] for line in block.splitlines()] for block in text.split("\n\n") if block.strip()]
    path = folder / "sentences.jsonl"
    path.write_text("".join(json.dumps({"tokens": s}) + "\n" for s in _cycled(sentences, count)))
    return path


def write_inputs(task: str, count: int, folder: Path) -> Path:
    """The task's `count` benchmark inputs under `folder`, as a file or folder for predict.py's --input."""
    folder.mkdir(parents=True, exist_ok=True)
    data = benchmark_data_dir()
    images = {"image_classification": lambda: list((data / "image_classification" / "hymenoptera" / "validation")
                                                   .glob("*/*.jpg")),
              "object_detection": lambda: list((data / "object_detection" / "raccoon" / "validation").glob("*.jpg")),
              "semantic_segmentation": lambda: list((data / "semantic_segmentation" / "camvid" / "validation" /
                                                     "images").glob("*.jpg"))}
    if task in images:
        return _image_folder(images[task](), count, folder / "images")
    writers: dict[str, Callable] = {"text_classification": _text, "question_answering": _questions,
                                    "translation": _sources, "token_classification": _sentences}
    return writers[task](count, folder)


def pipeline_settings(task: str, model: Path, batch_size: int) -> dict:
    """The call arguments that give the pipeline predict.py's work: the run's config.yaml beside the model is what
    predict.py takes its lengths, beams and windows from."""
    run_config = model.parent / "config.yaml"
    cfg = yaml.safe_load(run_config.read_text()) if run_config.is_file() else {}
    settings = {"batch_size": batch_size}
    if task == "text_classification":
        settings["max_length"] = cfg.get("max_seq_length", 128)
    elif task == "question_answering":
        settings.update(max_seq_len=cfg.get("max_seq_length", 384), doc_stride=cfg.get("doc_stride", 128),
                        max_answer_len=cfg.get("max_answer_length", 30), n_best=cfg.get("n_best_size", 20))
    elif task == "translation":
        settings.update(num_beams=cfg.get("num_beams", 4), max_source_length=cfg.get("max_source_length", 128),
                        max_length=cfg.get("generation_max_length") or cfg.get("max_target_length", 128))
    elif task == "image_classification":
        settings["top_k"] = 5  # predict.py's default --top_k
    elif task == "object_detection":
        settings["threshold"] = 0.0  # predict.py keeps every decoded box (COCO evaluation wants them)
    return settings


def _detections(path: Path) -> list:
    """Per image (by file name, in name order): the label of its best box, and how many boxes it has."""
    best: dict[str, tuple[float, int]] = {}
    counts: dict[str, int] = {}
    for entry in json.loads(path.read_text()):
        name = entry["file_name"]
        counts[name] = counts.get(name, 0) + 1
        if entry["score"] > best.get(name, (-1.0, 0))[0]:
            best[name] = (entry["score"], entry["category_id"])
    return [(best[name][1], counts[name]) for name in sorted(best)]


def _mask_pixels(folder: Path) -> list:
    import numpy as np
    from PIL import Image

    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def _conll_tags(path: Path) -> list:
    return [line.split("\t")[-1] for line in path.read_text().splitlines() if line.strip()]


def output_units(task: str, output: Path) -> list:
    """What the agreement compares: one value per input row (per word for tags, per image for masks)."""
    readers: dict[str, Callable[[Path], list]] = {
        "text_classification": lambda p: [r["label"] for r in csv.DictReader(p.open())],
        "question_answering": lambda p: list(json.loads(p.read_text()).items()),
        "translation": lambda p: p.read_text(encoding="utf-8").splitlines(),
        "image_classification": lambda p: [r["label_1"] for r in csv.DictReader(p.open())],
        "object_detection": _detections, "semantic_segmentation": _mask_pixels, "token_classification": _conll_tags}
    return readers[task](output)


def agreement(task: str, ours: Path, theirs: Path) -> tuple[int, int, float]:
    """(units predict.py wrote, units the pipeline wrote, share equal); masks count their equal pixels."""
    a, b = output_units(task, ours), output_units(task, theirs)
    if len(a) != len(b) or not a:
        return len(a), len(b), 0.0
    if task == "semantic_segmentation":
        same = sum(float((x == y).mean()) if x.shape == y.shape else 0.0 for x, y in zip(a, b))
    else:
        same = sum(x == y for x, y in zip(a, b))
    return len(a), len(b), round(same / len(a), 4)
