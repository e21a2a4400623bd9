"""Generates the embedded sample detection data: coloured shapes on noise, as COCO JSON split folders.

Nothing is shipped: `default_dataset()` draws the images from a fixed seed the first time it is needed and
keeps them in the suite's cache (~/.cache/finetune_suite/data). Category ids start at 1, as in COCO, so the
mapping from ids to label indices is exercised. `python -m tasks.object_detection.sample_data DIR` writes a copy.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from shared.inputs.sample_cache import cached_sample
from tasks.object_detection.data import ANNOTATION_FILE

CLASSES = ["circle", "square", "triangle"]
CLASS_COLOURS = {"circle": (220, 40, 40), "square": (40, 180, 60), "triangle": (40, 80, 220)}
VERSION = "shapes-coco-v1"  # bump when the drawing changes, so stale caches are rebuilt


def _draw(pen: ImageDraw.ImageDraw, name: str, box: tuple[float, float, float, float], fill) -> None:
    x, y, w, h = box
    if name == "circle":
        pen.ellipse([x, y, x + w - 1, y + h - 1], fill=fill)
    elif name == "square":
        pen.rectangle([x, y, x + w - 1, y + h - 1], fill=fill)
    else:
        pen.polygon([(x + w / 2, y), (x + w - 1, y + h - 1), (x, y + h - 1)], fill=fill)


def _free(box, placed) -> bool:
    x, y, w, h = box
    return all(x + w <= px or px + pw <= x or y + h <= py or py + ph <= y for px, py, pw, ph in placed)


def draw_scene(rng: random.Random, size: int, max_objects: int, colour_coded: bool) -> tuple[Image.Image, list]:
    """One image with 1..max_objects non-overlapping shapes; returns it and [(class, [x, y, w, h]), ...]."""
    noise = np.random.default_rng(rng.getrandbits(32)).integers(70, 180, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    pen = ImageDraw.Draw(image)
    objects, placed = [], []
    for _ in range(rng.randint(1, max_objects)):
        for _attempt in range(20):
            w, h = (int(rng.uniform(0.2, 0.45) * size) for _ in range(2))
            box = (rng.randint(0, size - w), rng.randint(0, size - h), w, h)
            if _free(box, placed):
                break
        else:
            continue
        name = rng.choice(CLASSES)
        fill = CLASS_COLOURS[name] if colour_coded else tuple(rng.randint(0, 255) for _ in range(3))
        _draw(pen, name, box, fill)
        placed.append(box)
        objects.append((name, [float(v) for v in box]))
    return image, objects


def write_coco_split(folder: Path, count: int, size: int = 128, seed: int = 0, max_objects: int = 3,
                     colour_coded: bool = False) -> Path:
    """`folder/<i>.png` and `folder/_annotations.coco.json` for `count` images; return folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASSES)]
    ids = {c["name"]: c["id"] for c in categories}
    images, annotations = [], []
    for index in range(count):
        image, objects = draw_scene(rng, size, max_objects, colour_coded)
        name = f"{index:04d}.png"
        image.save(folder / name)
        images.append({"id": index, "file_name": name, "width": size, "height": size})
        for label, box in objects:
            annotations.append({"id": len(annotations), "image_id": index, "category_id": ids[label], "bbox": box,
                                "area": box[2] * box[3], "iscrowd": 0})
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (folder / ANNOTATION_FILE).write_text(json.dumps(coco))
    return folder


def write_dataset(root: Path, counts: dict[str, int], **kwargs) -> Path:
    """One COCO split folder per entry of `counts` ({"train": 120, "validation": 40}), seeds differing per split."""
    seed = kwargs.pop("seed", 0)
    for offset, (split, count) in enumerate(counts.items()):
        write_coco_split(Path(root) / split, count, seed=seed + offset * 1000, **kwargs)
    return Path(root)


def default_dataset() -> Path:
    """The embedded sample data (120 train / 40 validation images of 128x128), drawn once into the cache."""
    return cached_sample("object_detection", VERSION,
                         lambda folder: write_dataset(folder, {"train": 120, "validation": 40}),
                         marker=f"validation/{ANNOTATION_FILE}")


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("shapes_coco")
    print(f"wrote {write_dataset(out, {'train': 120, 'validation': 40})}")
