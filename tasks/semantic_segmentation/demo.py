"""Gradio demo spec of a segmentation model: an image in, its class mask as a coloured overlay with a legend out."""
from __future__ import annotations

import gradio as gr
import numpy as np

from shared.serving.examples import ValidationSource, evenly, image_files
from shared.task import DemoSpec
from tasks.semantic_segmentation.report import ALPHA

EXAMPLE_COUNT = 3


def example_images() -> list[list[str]]:
    """Scenes drawn by the project (shapes on noise, like the sample data), written once into the cache: the
    examples when the model's own validation data is not on this machine."""
    import random

    from shared.toolkit.models import cache_dir
    from tasks.semantic_segmentation.sample_data import VERSION, draw_scene

    folder = cache_dir() / "data" / "semantic_segmentation" / f"{VERSION}-demo"
    paths = [folder / f"example_{i}.png" for i in range(EXAMPLE_COUNT)]
    if not all(p.is_file() for p in paths):
        folder.mkdir(parents=True, exist_ok=True)
        rng = random.Random(1234)
        for path in paths:
            image, _ = draw_scene(rng, 256)
            tmp = path.with_suffix(".tmp.png")
            image.save(tmp)
            tmp.replace(path)  # atomic: a second app starting at once never reads half a file
    return [[str(p)] for p in paths]


def examples_from(source: ValidationSource, n: int) -> list[list[str]]:
    """Validation images spread over the split (CamVid's, like many, are frames of a few videos)."""
    return [[path] for path in image_files(source.rows, "image", evenly(len(source.rows), n))]


def _present(segments: list[dict], image) -> tuple:
    """(AnnotatedImage value, {label: share of the image's pixels}) from the pipeline's per-label masks.

    Each mask's value is its opacity (gradio writes it as the mask's alpha): ALPHA, as in the evaluation
    overlays, so the photo shows through the class colours."""
    total = image.size[0] * image.size[1]
    masks = [(np.asarray(s["mask"]) > 0, s["label"]) for s in segments]
    shares = {label: float(mask.sum()) / total for mask, label in masks}
    return (image, [(mask.astype(np.float32) * ALPHA, label) for mask, label in masks]), shares


def predict_batch(pipe, rows: list[tuple]) -> list[tuple]:
    """One (overlay, shares) pair per row; the images go through the pipeline together."""
    images = [image for image, in rows]
    # subtask "semantic": one mask per class, also from Mask2Former, whose default answer is panoptic
    results = pipe(images, subtask="semantic", batch_size=len(images)) if len(images) > 1 \
        else [pipe(images[0], subtask="semantic")]
    return [_present(segments, image) for segments, image in zip(results, images)]


def demo_spec() -> DemoSpec:
    return DemoSpec(
        pipeline_tag="image-segmentation",
        inputs=lambda: [gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"])],
        outputs=lambda: [gr.AnnotatedImage(label="Classes (hover the legend to highlight one)", show_legend=True),
                         gr.Label(label="Share of the image per class", num_top_classes=10)],
        predict=lambda pipe, image: predict_batch(pipe, [(image,)])[0],
        predict_batch=predict_batch,
        examples=example_images(),
        examples_from=examples_from,
        title="Semantic segmentation",
        description="Every pixel gets a class. The mask is drawn translucent over the image, one colour per "
                    "class, with a legend; images larger than 2048 pixels a side are scaled down first.",
        max_batch_size=4,
    )
