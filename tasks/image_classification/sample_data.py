"""Generates the embedded sample dataset: coloured shapes on noise, as an image folder (split/<class>/*.png).

Nothing is shipped: `default_dataset()` draws the images from a fixed seed the first time it is needed and
keeps them in the suite's cache (~/.cache/finetune_suite/data), so every machine gets the same files.
Run `python -m tasks.image_classification.sample_data DIR` to write a copy somewhere else.
"""
from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from shared.inputs.sample_cache import cached_sample

CLASSES = ["circle", "square", "stripes", "triangle"]
VERSION = "shapes-v1"  # bump when the drawing changes, so stale caches are rebuilt
# one hue per class, used only for colour-coded sets (tests with random-init models learn colour in seconds)
CLASS_COLOURS = {"circle": (220, 40, 40), "square": (40, 180, 60), "stripes": (40, 80, 220), "triangle": (230, 200, 30)}


def _colour(rng: random.Random) -> tuple[int, int, int]:
    # a saturated colour: one channel high, one low, so the shape stands out from grey-ish noise
    channels = [rng.randint(180, 255), rng.randint(0, 70), rng.randint(0, 255)]
    rng.shuffle(channels)
    return tuple(channels)


def draw_shape(rng: random.Random, name: str, size: int, colour_coded: bool = False) -> Image.Image:
    """One RGB image of class `name`: a shape of random colour, size, position and angle on uniform noise."""
    noise = np.random.default_rng(rng.getrandbits(32)).integers(60, 190, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    pen = ImageDraw.Draw(image)
    fill = CLASS_COLOURS[name] if colour_coded else _colour(rng)
    radius = rng.uniform(0.22, 0.38) * size
    cx, cy = (rng.uniform(radius, size - radius) for _ in range(2))
    angle = rng.uniform(0, 2 * math.pi)
    if name == "circle":
        pen.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
    elif name in ("square", "triangle"):
        corners = 4 if name == "square" else 3
        points = [(cx + radius * math.cos(angle + 2 * math.pi * k / corners),
                   cy + radius * math.sin(angle + 2 * math.pi * k / corners)) for k in range(corners)]
        pen.polygon(points, fill=fill)
    elif name == "stripes":
        width, gap = max(2, size // 16), rng.uniform(0.12, 0.2) * size
        dx, dy = math.cos(angle), math.sin(angle)
        for k in range(-6, 7):  # parallel lines across the whole image
            ox, oy = size / 2 - dy * k * gap, size / 2 + dx * k * gap
            pen.line([(ox - dx * size, oy - dy * size), (ox + dx * size, oy + dy * size)], fill=fill, width=width)
    else:
        raise ValueError(f"unknown shape {name!r}; known: {CLASSES}")
    return image


def write_image_folder(root: Path, per_class: dict[str, int], size: int = 96, seed: int = 0,
                       classes: list[str] | None = None, colour_coded: bool = False) -> Path:
    """Write `root/<split>/<class>/<i>.png` for each split in `per_class` ({"train": 40, ...}); return root."""
    rng = random.Random(seed)
    for split, count in per_class.items():
        for name in classes or CLASSES:
            folder = Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                draw_shape(rng, name, size, colour_coded).save(folder / f"{index:03d}.png")
    return Path(root)


def default_dataset() -> Path:
    """The embedded sample data (160 train / 60 validation images), drawn once into the cache."""
    return cached_sample("image_classification", VERSION,
                         lambda folder: write_image_folder(folder, {"train": 40, "validation": 15}, seed=0))


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("shapes")
    print(f"wrote {write_image_folder(out, {'train': 40, 'validation': 15})}")
