"""The bad-input cases for boxes and masks (object detection, semantic segmentation), and the case record.

tests/e2e/test_bad_input.py runs every case; each names the file, the row and the reason it must print.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image


@dataclass(frozen=True)
class BadInput:
    id: str
    task: str
    make: Callable[[Path, dict], list[str]]
    expect: str
    subprocess: bool = False


# ------------------------------------------------------------------ object detection
def _coco(tmp: Path, fx: dict, change=None) -> list[str]:
    """A 3-image COCO folder (64x64) used as both splits, after `change(coco, folder)`."""
    from tasks.object_detection.sample_data import ANNOTATION_FILE, write_coco_split

    folder = write_coco_split(tmp / "coco", 3, size=64, seed=1)
    coco = json.loads((folder / ANNOTATION_FILE).read_text())
    if change:
        change(coco, folder)
    (folder / ANNOTATION_FILE).write_text(json.dumps(coco))
    return ["--train_dir", str(folder), "--validation_dir", str(folder)]


def _first_box(value: list[float]):
    return lambda coco, folder: coco["annotations"][0].update(bbox=value)


DETECTION = [
    BadInput("detection-missing-image", "object_detection",
             lambda t, fx: _coco(t, fx, lambda c, f: (f / "0001.png").unlink()), r"0001\.png.*not found"),
    BadInput("detection-box-outside-image", "object_detection",
             lambda t, fx: _coco(t, fx, _first_box([50, 10, 30, 20])),
             r"annotation 0 .*outside the 64x64 image"),
    BadInput("detection-box-non-positive", "object_detection", lambda t, fx: _coco(t, fx, _first_box([5, 5, 0, 10])),
             r"annotation 0 .*non-positive size"),
    BadInput("detection-unknown-category", "object_detection",
             lambda t, fx: _coco(t, fx, lambda c, f: c["annotations"][0].update(category_id=7)),
             r"annotation 0 .*unknown category id 7"),
    BadInput("detection-annotation-without-image", "object_detection",
             lambda t, fx: _coco(t, fx, lambda c, f: c["annotations"][0].update(image_id=99)),
             r"annotation 0 .*image_id 99 .*missing image"),
    BadInput("detection-unreadable-image", "object_detection",
             lambda t, fx: _coco(t, fx, lambda c, f: (f / "0002.png").write_bytes(b"not an image")),
             r"0002\.png: unreadable image", subprocess=True),
]


# ------------------------------------------------------------------ semantic segmentation
def _scenes(tmp: Path, fx: dict, damage=None) -> list[str]:
    """images/ + masks/ + labels.json (32x32 scenes), after `damage(image, mask)` on train/003."""
    from tasks.semantic_segmentation.sample_data import write_dataset

    root = write_dataset(tmp / "scenes", {"train": 4, "validation": 2}, size=32)
    if damage:
        damage(root / "train" / "images" / "003.png", root / "train" / "masks" / "003.png")
    return ["--train_dir", str(root / "train"), "--validation_dir", str(root / "validation")]


def _mask_value(mask: Path) -> None:
    import numpy as np

    array = np.asarray(Image.open(mask)).copy()
    array[0, 0] = 7
    Image.fromarray(array).save(mask)


SEGMENTATION = [
    BadInput("segmentation-image-without-mask", "semantic_segmentation",
             lambda t, fx: _scenes(t, fx, lambda image, mask: mask.unlink()),
             r"images/003\.png: image without a mask"),
    BadInput("segmentation-mask-size", "semantic_segmentation",
             lambda t, fx: _scenes(t, fx, lambda image, mask: Image.new("L", (16, 32)).save(mask)),
             r"masks/003\.png: mask is 16x32 but its image .*images/003\.png is 32x32"),
    BadInput("segmentation-mask-value", "semantic_segmentation",
             lambda t, fx: _scenes(t, fx, lambda image, mask: _mask_value(mask)),
             r"masks/003\.png: mask values \[7\] are outside the label set"),
    BadInput("segmentation-unreadable-image", "semantic_segmentation",
             lambda t, fx: _scenes(t, fx, lambda image, mask: image.write_bytes(image.read_bytes()[:60])),
             r"images/003\.png: unreadable image", subprocess=True),
    BadInput("segmentation-rgb-mask", "semantic_segmentation",
             lambda t, fx: _scenes(t, fx, lambda image, mask: Image.open(mask).convert("RGB").save(mask)),
             r"masks/003\.png: mask has mode RGB; expected a single-channel index PNG"),
]
