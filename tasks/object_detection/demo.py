"""Gradio demo spec of a detector: an image and a score threshold in, boxes drawn on the image and a table out."""
from __future__ import annotations

import gradio as gr

from shared.serving.examples import ValidationSource, evenly, image_files
from shared.task import DemoSpec
from tasks.object_detection.drawing import draw_detections

DEFAULT_THRESHOLD = 0.3


def _examples() -> list:
    """Two generated shape scenes (drawn once into the cache), each with the default threshold: the examples
    when the model's own validation data is not on this machine."""
    from tasks.object_detection.sample_data import default_dataset

    folder = default_dataset() / "validation"
    return [[str(folder / name), DEFAULT_THRESHOLD] for name in ("0000.png", "0001.png")]


def examples_from(source: ValidationSource, n: int) -> list:
    """Validation images spread over the split, each with the default threshold."""
    paths = image_files(source.rows, "image", evenly(len(source.rows), n))
    return [[path, DEFAULT_THRESHOLD] for path in paths]


def predict_batch(pipe, rows: list[tuple]) -> list:
    """Per row (image, threshold): the annotated image and its detections [{label, score, box}], best first."""
    images, thresholds = [image for image, _ in rows], [float(t) for _, t in rows]
    results = pipe(images, threshold=min(thresholds), batch_size=len(images))
    if len(images) == 1 and results and isinstance(results[0], dict):  # one image: a flat list of detections
        results = [results]
    labels = [pipe.model.config.id2label[i] for i in sorted(pipe.model.config.id2label)]
    outputs = []
    for image, threshold, found in zip(images, thresholds, results):
        kept = sorted((d for d in found if d["score"] >= threshold), key=lambda d: -d["score"])
        boxes = [[d["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")] for d in kept]
        drawn = draw_detections(image, {"boxes": boxes, "scores": [d["score"] for d in kept],
                                        "labels": [d["label"] for d in kept]}, labels, threshold)
        table = [{"label": d["label"], "score": round(d["score"], 4), "box": d["box"]} for d in kept]
        outputs.append((drawn, table))
    return outputs


def demo_spec() -> DemoSpec:
    return DemoSpec(
        pipeline_tag="object-detection",
        inputs=lambda: [gr.Image(label="Image", type="filepath"),
                        gr.Slider(0.0, 1.0, value=DEFAULT_THRESHOLD, step=0.05, label="Score threshold")],
        outputs=lambda: [gr.Image(label="Detections", type="pil"), gr.JSON(label="Boxes (pixels)")],
        predict=lambda pipe, image, threshold: predict_batch(pipe, [(image, threshold)])[0],
        predict_batch=predict_batch,
        examples=_examples(),
        examples_from=examples_from,
        title="Object detection",
        description="Boxes the model finds with a score at or above the threshold, with their labels and scores. "
                    "Lower the threshold to see less certain detections.",
    )
