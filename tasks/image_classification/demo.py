"""Gradio demo spec of an image classifier: an image in, the top-k label scores out."""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import gradio as gr

from shared.serving.examples import ValidationSource, image_files, spread
from shared.toolkit.models import cache_dir
from shared.task import DemoSpec
from tasks.image_classification.sample_data import CLASSES, VERSION, draw_shape

TOP_K = 5
EXAMPLE_SIDE = 224  # the input size of the packaged backbones
EXAMPLE_SEED = 7  # not the sample data's seed 0: the examples are images the default model never trained on


def example_images() -> list[Path]:
    """One drawn shape per class of the embedded sample data, written once into the suite's cache."""
    folder = cache_dir() / "demo" / "image_classification" / VERSION
    folder.mkdir(parents=True, exist_ok=True)
    rng, paths = random.Random(EXAMPLE_SEED), []
    for name in CLASSES:
        image, path = draw_shape(rng, name, EXAMPLE_SIDE), folder / f"{name}.png"
        if not path.is_file():  # written beside the target, then renamed: a reader never sees half a file
            handle, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
            os.close(handle)
            image.save(tmp)
            os.replace(tmp, path)
        paths.append(path)
    return paths


def examples_from(source: ValidationSource, n: int) -> list[list[str]]:
    """Validation images taken in turn from each class: one per class first (as many classes as n allows)."""
    rows = source.rows
    labels = rows["label"] if "label" in rows.column_names else [0] * len(rows)
    return [[path] for path in image_files(rows, "image", spread(labels, n))]


def predict_batch(pipe, rows: list[tuple]) -> list[dict]:
    """One gr.Label value per row: {label: score} for the model's top-k labels (sigmoid scores for
    multi-label models, which the pipeline picks from the saved config)."""
    images = [image for image, in rows]
    results = pipe(images, top_k=TOP_K, batch_size=len(images))
    return [{r["label"]: r["score"] for r in result} for result in results]


def demo_spec() -> DemoSpec:
    return DemoSpec(
        pipeline_tag="image-classification",
        inputs=lambda: [gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"])],
        outputs=lambda: [gr.Label(label=f"Top {TOP_K} labels", num_top_classes=TOP_K)],
        predict=lambda pipe, image: predict_batch(pipe, [(image,)])[0],
        predict_batch=predict_batch,
        examples=[[str(path)] for path in example_images()],
        examples_from=examples_from,
        title="Image classification",
        description=f"The {TOP_K} most likely labels and their scores. The examples are images of the model's "
                    "validation data, one per class, when it is on this machine (else shapes like the embedded "
                    "sample data); upload any photo. Images larger than 2048 pixels a side are scaled down first.",
        max_image_side=2048,
    )
