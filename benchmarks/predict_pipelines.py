"""The plain side of benchmarks/predict_speed.py: `transformers.pipeline(<tag>, model=dir)` over the inputs predict.py
reads, at one batch size, writing the same kind of file predict.py writes.

    python benchmarks/predict_pipelines.py TASK MODEL INPUT OUTPUT '{"batch_size": 32, ...}'

The settings predict.py takes from the run's config.yaml (lengths, beams, windows) come in the JSON argument, so
both sides do the same work. Each loop prints `(N inputs in S s` as predict.py does: from the pipeline loaded to
the last row written, imports and model loading apart.
"""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

import tasks  # noqa: E402,F401  (registers the project's question-answering and translation tags)
from shared.serving.predict import list_images  # noqa: E402  (the same images, in the same order)

TAGS = {"text_classification": "text-classification", "question_answering": "extractive-question-answering",
        "translation": "seq2seq-translation", "image_classification": "image-classification",
        "object_detection": "object-detection", "semantic_segmentation": "image-segmentation",
        "token_classification": "token-classification"}


def text_classification(pipe, source: Path, output: Path, settings: dict) -> int:
    texts = [row["text"] for row in csv.DictReader(source.open())]
    labels = [pipe.model.config.id2label[i] for i in sorted(pipe.model.config.id2label)]
    with output.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", *(f"score_{name}" for name in labels)])
        for text, scores in zip(texts, pipe(texts, batch_size=settings["batch_size"], top_k=None, truncation=True,
                                            max_length=settings["max_length"])):
            by_label = {s["label"]: round(s["score"], 6) for s in scores}
            writer.writerow([text, max(by_label, key=by_label.get), *(by_label[name] for name in labels)])
    return len(texts)


def question_answering(pipe, source: Path, output: Path, settings: dict) -> int:
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    answers = pipe([{"question": r["question"], "context": r["context"]} for r in rows],
                   batch_size=settings["batch_size"], max_seq_len=settings["max_seq_len"],
                   doc_stride=settings["doc_stride"], max_answer_len=settings["max_answer_len"], n_best=settings["n_best"])
    with output.with_suffix(".jsonl").open("w") as lines:
        lines.writelines(json.dumps({"id": r["id"], "question": r["question"], **a}) + "\n" for r, a in zip(rows, answers))
    output.write_text(json.dumps({r["id"]: a["answer"] for r, a in zip(rows, answers)}, indent=0))
    return len(rows)


def translation(pipe, source: Path, output: Path, settings: dict) -> int:
    texts = source.read_text(encoding="utf-8").splitlines()
    translated = pipe(texts, batch_size=settings["batch_size"], num_beams=settings["num_beams"],
                      max_length=settings["max_length"], max_source_length=settings["max_source_length"])
    with output.open("w", encoding="utf-8") as handle:
        handle.writelines(" ".join(t["translation_text"].splitlines()) + "\n" for t in translated)
    return len(texts)


def image_classification(pipe, source: Path, output: Path, settings: dict) -> int:
    paths = [str(p) for p in list_images(source, allow_outside=True)]
    k = min(settings["top_k"], pipe.model.config.num_labels)
    with output.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *(c for i in range(1, k + 1) for c in (f"label_{i}", f"score_{i}"))])
        for path, best in zip(paths, pipe(paths, batch_size=settings["batch_size"], top_k=k)):
            writer.writerow([path, *(v for b in best for v in (b["label"], round(b["score"], 6)))])
    return len(paths)


def object_detection(pipe, source: Path, output: Path, settings: dict) -> int:
    paths = [str(p) for p in list_images(source, allow_outside=True)]
    ids = pipe.model.config.label2id
    entries = []
    for image_id, (path, boxes) in enumerate(zip(paths, pipe(paths, batch_size=settings["batch_size"],
                                                             threshold=settings["threshold"]))):
        for box in boxes:  # COCO results, as predict.py writes them
            x0, y0, x1, y1 = (box["box"][k] for k in ("xmin", "ymin", "xmax", "ymax"))
            entries.append({"image_id": image_id, "category_id": int(ids[box["label"]]), "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "score": round(float(box["score"]), 5), "file_name": Path(path).name})
    output.write_text(json.dumps(entries))
    return len(paths)


def semantic_segmentation(pipe, source: Path, output: Path, settings: dict) -> int:
    import numpy as np
    from PIL import Image

    paths = list_images(source, allow_outside=True)
    ids = pipe.model.config.label2id
    colours = np.random.default_rng(0).integers(0, 256, (256, 3), dtype=np.uint8)
    output.mkdir(parents=True, exist_ok=True)
    for path, segments in zip(paths, pipe([str(p) for p in paths], batch_size=settings["batch_size"],
                                          subtask="semantic")):
        mask = np.zeros(np.asarray(segments[0]["mask"]).shape, dtype=np.uint8)
        for segment in segments:  # one binary mask per class present: back to one class id per pixel
            mask[np.asarray(segment["mask"]) > 0] = ids[segment["label"]]
        image = Image.fromarray(mask)
        image.putpalette(colours.flatten().tolist())  # an index PNG, as predict.py writes
        image.save(output / (path.stem + ".png"))
    return len(paths)


def token_classification(pipe, source: Path, output: Path, settings: dict) -> int:
    sentences = [json.loads(line)["tokens"] for line in source.read_text().splitlines() if line.strip()]
    results = pipe(sentences, batch_size=settings["batch_size"], is_split_into_words=True)
    with output.open("w", encoding="utf-8") as handle:
        for words, tokens in zip(sentences, results):
            starts, at = {}, 0
            for index, word in enumerate(words):  # offsets are into the words joined by single spaces
                starts[at] = index
                at += len(word) + 1
            tags = ["O"] * len(words)
            for token in reversed(tokens):  # the first sub-token of a word decides its tag
                if token["start"] in starts:
                    tags[starts[token["start"]]] = token["entity"]
            handle.writelines(f"{word}\t{tag}\n" for word, tag in zip(words, tags))
            handle.write("\n")
    return len(sentences)


def main(argv: list[str]) -> None:
    from transformers import pipeline

    task, model, source, output, settings = argv[0], argv[1], Path(argv[2]), Path(argv[3]), json.loads(argv[4])
    extra = {"ignore_labels": []} if task == "token_classification" else {}  # every word's tag, O included
    pipe = pipeline(TAGS[task], model=model, **extra)
    started = time.perf_counter()  # as predict.py's rate: from the model loaded to the last row written
    count = globals()[task](pipe, source, output, settings)
    print(f"({count} inputs in {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
