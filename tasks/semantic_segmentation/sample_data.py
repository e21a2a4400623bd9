"""Generates the embedded sample data: shapes on a noisy background, with index-PNG masks (images/, masks/, labels.json).

Nothing is shipped: `default_dataset()` draws the images from a fixed seed the first time it is needed and
keeps them in the suite's cache (~/.cache/finetune_suite/data), so every machine gets the same files.
Run `python -m tasks.semantic_segmentation.sample_data DIR` to write a copy somewhere else.
"""
from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from shared.inputs.sample_cache import cached_sample

LABELS = ["background", "circle", "square", "triangle"]
IGNORE_INDEX = 255  # the one-pixel outline of every shape: anti-aliasing makes its class ambiguous
VERSION = "seg-shapes-v1"  # bump when the drawing changes, so stale caches are rebuilt
# one hue per shape when colour-coded (tests with random-init models learn colour in seconds)
COLOURS = {"circle": (220, 40, 40), "square": (40, 180, 60), "triangle": (40, 80, 220)}


def _outline(name: str, rng: random.Random, size: int) -> tuple[str, list]:
    radius = rng.uniform(0.12, 0.24) * size
    cx, cy = (rng.uniform(radius, size - radius) for _ in range(2))
    if name == "circle":
        return "ellipse", [cx - radius, cy - radius, cx + radius, cy + radius]
    corners, angle = (4 if name == "square" else 3), rng.uniform(0, 2 * math.pi)
    return "polygon", [(cx + radius * math.cos(angle + 2 * math.pi * k / corners),
                        cy + radius * math.sin(angle + 2 * math.pi * k / corners)) for k in range(corners)]


def draw_scene(rng: random.Random, size: int, colour_coded: bool = False) -> tuple[Image.Image, Image.Image]:
    """(RGB image, mask): one to three shapes on uniform noise; mask 0 = background, i = LABELS[i]."""
    noise = np.random.default_rng(rng.getrandbits(32)).integers(60, 190, (size, size, 3), dtype=np.uint8)
    image, mask = Image.fromarray(noise), Image.new("L", (size, size), 0)
    pen, mask_pen = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    for _ in range(rng.randint(1, 3)):  # later shapes cover earlier ones, in the image and the mask alike
        index = rng.randint(1, len(LABELS) - 1)
        kind, points = _outline(LABELS[index], rng, size)
        fill = COLOURS[LABELS[index]] if colour_coded else tuple(rng.randint(0, 255) for _ in range(3))
        getattr(pen, kind)(points, fill=fill)
        getattr(mask_pen, kind)(points, fill=index, outline=IGNORE_INDEX)
    return image, mask


def write_dataset(root: Path, counts: dict[str, int], size: int = 64, seed: int = 0,
                  colour_coded: bool = False) -> Path:
    """Write `root/<split>/images/<i>.png`, `root/<split>/masks/<i>.png` and `root/labels.json`; return root."""
    rng = random.Random(seed)
    for split, count in counts.items():
        for folder in ("images", "masks"):
            (Path(root) / split / folder).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, mask = draw_scene(rng, size, colour_coded)
            image.save(Path(root) / split / "images" / f"{index:03d}.png")
            mask.save(Path(root) / split / "masks" / f"{index:03d}.png")
    labels = {"id2label": dict(enumerate(LABELS)), "ignore_index": IGNORE_INDEX}
    (Path(root) / "labels.json").write_text(json.dumps(labels, indent=1))
    return Path(root)


def default_dataset() -> Path:
    """The embedded sample data (96 train / 32 validation scenes at 64x64), drawn once into the cache."""
    return cached_sample("semantic_segmentation", VERSION,
                         lambda folder: write_dataset(folder, {"train": 96, "validation": 32}, seed=0))


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("seg_shapes")
    print(f"wrote {write_dataset(out, {'train': 96, 'validation': 32})}")
