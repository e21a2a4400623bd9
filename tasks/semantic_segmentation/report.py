"""Evaluation figures: validation images with their true and predicted masks in the class colours."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from shared.evaluation.plots import plot_image_grid
from shared.inputs.vision import to_rgb

MAX_OVERLAYS = 6  # validation images in plots/overlays.png (each shown with truth and prediction)
ALPHA = 0.55  # mask opacity over the photo


def palette(num_labels: int) -> np.ndarray:
    """One distinct RGB colour per class (matplotlib's tab20, then golden-angle hues), black for 'ignored'."""
    from matplotlib import colormaps

    order = list(range(0, 20, 2)) + list(range(1, 20, 2))  # strong colours first, then their light pairs
    base = [tuple(int(255 * c) for c in colormaps["tab20"](i)[:3]) for i in order]
    extra = [tuple(int(255 * c) for c in colormaps["hsv"]((i * 0.618) % 1.0)[:3]) for i in range(max(0, num_labels - 20))]
    return np.array((base + extra)[:num_labels] + [(0, 0, 0)], dtype=np.uint8)


def overlay(image: Image.Image, mask: np.ndarray, colours: np.ndarray, ignore: int = 255) -> Image.Image:
    """The mask's class colours blended over the image; ignored pixels are darkened (black in the blend)."""
    image = to_rgb(image).resize(mask.shape[::-1])
    pixels = np.asarray(image, dtype=np.float32)
    ids = np.where((mask == ignore) | (mask < 0), len(colours) - 1, np.clip(mask, 0, len(colours) - 2))
    blended = (1 - ALPHA) * pixels + ALPHA * colours[ids].astype(np.float32)
    return Image.fromarray(blended.astype(np.uint8))


def legend(labels: list[str], colours: np.ndarray, width: int = 240) -> Image.Image:
    """A white card listing each class name beside its colour."""
    from PIL import ImageDraw

    row = 18
    card = Image.new("RGB", (width, row * len(labels) + 8), "white")
    pen = ImageDraw.Draw(card)
    for index, name in enumerate(labels):
        top = 4 + index * row
        pen.rectangle([6, top, 26, top + row - 4], fill=tuple(int(c) for c in colours[index]))
        pen.text((34, top + 1), name, fill="black")
    return card


def write_overlays(out_dir, batches: list[tuple], dataset, labels: list[str]) -> Path | None:
    """plots/overlays.png: the first validation images, each with its true mask and the predicted one."""
    colours = palette(len(labels))
    images, titles, index = [], [], 0
    for predictions, references in batches:
        for prediction, reference in zip(predictions, references):
            if index >= MAX_OVERLAYS:
                break
            row = dataset[index]
            width, height = row["mask"].size  # masks of a batch were padded to the largest one
            reference, prediction = np.asarray(reference)[:height, :width], np.asarray(prediction)[:height, :width]
            counted = reference != 255
            correct = (prediction == reference)[counted].mean() if counted.any() else float("nan")
            images += [overlay(row["image"], reference, colours), overlay(row["image"], prediction, colours)]
            titles += [f"#{index} truth (black: ignored)", f"#{index} predicted ({correct:.0%} of pixels right)"]
            index += 1
    if not images:
        return None
    return plot_image_grid(images + [legend(labels, colours)], titles + ["classes"], Path(out_dir) / "overlays.png",
                           cols=4)
