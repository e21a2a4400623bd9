"""Object detection data: COCO JSON folders and cppe-5-style hub datasets as checked splits, and box-aware transforms.

Every split becomes the cppe-5 layout: `image`, `image_id`, `width`, `height` and `objects` =
{"bbox": [[x, y, w, h] in pixels, ...], "category": [label index, ...]}.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from shared.inputs.data import DataError, inside_data_folder, kind_of, parse_json
from shared.inputs.vision import check_image

ANNOTATION_FILE = "_annotations.coco.json"
EDGE_TOLERANCE = 1.0  # pixels: VOC-converted boxes often end one pixel past the edge; clipped, not refused
FEATURES = datasets.Features({
    "image": datasets.Image(), "image_id": datasets.Value("int64"), "width": datasets.Value("int32"),
    "height": datasets.Value("int32"),
    "objects": {"bbox": datasets.List(datasets.List(datasets.Value("float32"))),
                "category": datasets.List(datasets.Value("int64"))},
})


# ---------------------------------------------------------------- COCO JSON folders
def _read_json(path: Path) -> dict:
    """A COCO annotation file, its three lists and every entry checked for the fields the reader uses."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; a split folder holds its images and {ANNOTATION_FILE}")
    coco = parse_json(path)
    if not isinstance(coco, dict):
        raise DataError(f"{path}: expected a COCO object with images, annotations and categories, got {kind_of(coco)}")
    missing = [key for key in ("images", "annotations", "categories") if key not in coco]
    if missing:
        raise DataError(f"{path}: missing COCO key(s) {missing}")
    for key, fields in ENTRY_FIELDS.items():
        if not isinstance(coco[key], list):
            raise DataError(f"{path}: {key!r} must be a list, got {kind_of(coco[key])}")
        for number, entry in enumerate(coco[key]):
            _check_entry(entry, fields, f"{path}: {SINGULAR[key]} {number}")
    for key in ("images", "categories"):  # annotations point at these by id
        seen = {}
        for number, entry in enumerate(coco[key]):
            if entry["id"] in seen:
                raise DataError(f"{path}: {SINGULAR[key]} {number}: duplicate id {entry['id']} "
                                f"(also entry {seen[entry['id']]} of {key!r})")
            seen[entry["id"]] = number
    return coco


# The fields the reader uses, by COCO list: "int" (a whole number; width and height also positive), "str", "box".
ENTRY_FIELDS = {"images": {"id": "int", "file_name": "str", "width": "size", "height": "size"},
                "categories": {"id": "int", "name": "str"},
                "annotations": {"image_id": "int", "category_id": "int", "bbox": "box"}}
SINGULAR = {"images": "image", "categories": "category", "annotations": "annotation"}
_WANTED = {"int": "an integer", "size": "a positive integer", "str": "a string", "box": "a list [x, y, w, h]"}


def _field_fits(value, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "box":
        return isinstance(value, list)
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return whole and not isinstance(value, bool) and (kind == "int" or value > 0)


def _check_entry(entry, fields: dict[str, str], where: str) -> None:
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected an object, got {kind_of(entry)}")
    for name, kind in fields.items():
        if not _field_fits(entry.get(name), kind):
            got = kind_of(entry[name]) if name in entry else "nothing"
            raise DataError(f"{where} (id {entry.get('id')!r}): {name!r} must be {_WANTED[kind]}, got {got}")


def coco_categories(folder: str | Path) -> list[tuple[int, str]]:
    """(category id, name) pairs of a split folder's COCO file, sorted by id."""
    path = Path(folder) / ANNOTATION_FILE
    return sorted((int(c["id"]), str(c["name"])) for c in _read_json(path)["categories"])


def _checked_box(box, width: int, height: int, where: str) -> list[float]:
    """The box clipped to the image, or DataError when it has no area or lies outside the image."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise DataError(f"{where}: bbox must be [x, y, w, h] in pixels, got {box!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        raise DataError(f"{where}: bbox values must be numbers, got {box!r}")
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise DataError(f"{where}: bbox {box} has non-positive size (w={w:g}, h={h:g})")
    tol = EDGE_TOLERANCE
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise DataError(f"{where}: bbox {box} ([x, y, w, h] in pixels) lies outside the {width}x{height} image")
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)
    return [x0, y0, x1 - x0, y1 - y0]


def load_coco_folder(folder: str | Path, category_index: dict[int, int], verify_images: bool = True,
                     allow_outside: bool = False) -> datasets.Dataset:
    """One split folder (images + _annotations.coco.json) as a checked dataset; categories mapped by `category_index`."""
    folder = Path(folder)
    path = folder / ANNOTATION_FILE
    coco = _read_json(path)
    images, rows = {}, {}
    for image in coco["images"]:
        file = folder / str(image.get("file_name", ""))
        where = f"{path}: image id {image.get('id')} ({file.name})"
        inside_data_folder(file, folder, allow_outside, where)
        if not file.is_file():
            raise DataError(f"{where}: image file {file} not found")
        if verify_images:
            check_image(file, f"{path}: {file}")
            with Image.open(file) as opened:
                if opened.size != (image.get("width"), image.get("height")):
                    raise DataError(f"{where}: the file is {opened.size[0]}x{opened.size[1]} but the annotation file "
                                    f"says {image.get('width')}x{image.get('height')}; boxes would be misplaced")
        images[image["id"]] = image
        rows[image["id"]] = {"image": str(file), "image_id": int(image["id"]), "width": int(image["width"]),
                             "height": int(image["height"]), "objects": {"bbox": [], "category": []}}
    for number, annotation in enumerate(coco["annotations"]):
        where = f"{path}: annotation {number} (id {annotation.get('id')})"
        image = images.get(annotation.get("image_id"))
        if image is None:
            raise DataError(f"{where}: image_id {annotation.get('image_id')!r} is not among the {len(images)} images "
                            "listed in 'images' (annotation for a missing image)")
        if annotation.get("category_id") not in category_index:
            raise DataError(f"{where}: unknown category id {annotation.get('category_id')!r}; known ids "
                            f"{sorted(category_index)}")
        box = _checked_box(annotation.get("bbox"), int(image["width"]), int(image["height"]),
                           f"{where} on {image['file_name']}")
        objects = rows[image["id"]]["objects"]
        objects["bbox"].append(box)
        objects["category"].append(category_index[annotation["category_id"]])
    columns = {key: [row[key] for row in rows.values()] for key in FEATURES}
    return datasets.Dataset.from_dict(columns, features=FEATURES)


def load_coco_folders(train_dir: str, validation_dir: str | None, verify_images: bool = True,
                      test_dir: str | None = None, allow_outside: bool = False) -> tuple[datasets.DatasetDict, list[str]]:
    """Train (and validation, test) folders with their label names; label order = sorted training category ids."""
    categories = coco_categories(train_dir)
    if not categories:
        raise DataError(f"{Path(train_dir) / ANNOTATION_FILE}: 'categories' is empty")
    index = {category_id: i for i, (category_id, _) in enumerate(categories)}
    splits = {"train": load_coco_folder(train_dir, index, verify_images, allow_outside)}
    for split, folder in (("validation", validation_dir), ("test", test_dir)):
        if not folder:
            continue
        names = dict(categories)
        for category_id, name in coco_categories(folder):
            if names.get(category_id, name) != name:
                raise DataError(f"{Path(folder) / ANNOTATION_FILE}: category id {category_id} is {name!r} "
                                f"here but {names[category_id]!r} in the training annotations")
        splits[split] = load_coco_folder(folder, index, verify_images, allow_outside)
    return datasets.DatasetDict(splits), [name for _, name in categories]


# ---------------------------------------------------------------- hub datasets (cppe-5 layout)
def hub_label_names(dataset: datasets.Dataset, source: str) -> list[str]:
    """Category names from the `objects.category` ClassLabel of a cppe-5-style dataset."""
    objects = dataset.features.get("objects")
    category = objects.get("category") if isinstance(objects, dict) else getattr(objects, "feature", {}).get("category")
    feature = getattr(category, "feature", category)
    if not hasattr(feature, "names"):
        raise DataError(f"{source}: expected the cppe-5 layout, an `objects` column with a `category` ClassLabel; "
                        f"found features {dataset.features}")
    return list(feature.names)


def check_hub_split(dataset: datasets.Dataset, source: str, num_labels: int) -> datasets.Dataset:
    """Boxes checked and clipped, categories checked, in the common layout (images are not decoded here)."""
    missing = [c for c in ("image", "width", "height", "objects") if c not in dataset.column_names]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; expected the cppe-5 layout")

    def check(row: dict, index: int) -> dict:
        where = f"{source} row {index}"
        objects = row["objects"]
        if isinstance(objects, list):  # List({...}) features give one dict per object; Sequence({...}) gives lists
            objects = {"bbox": [o["bbox"] for o in objects], "category": [o["category"] for o in objects]}
        boxes = [_checked_box(b, row["width"], row["height"], f"{where} box {k}") for k, b in enumerate(objects["bbox"])]
        for category in objects["category"]:
            if not 0 <= int(category) < num_labels:
                raise DataError(f"{where}: unknown category id {category}; the dataset has {num_labels} categories")
        image_id = row.get("image_id", index)
        return {"image_id": int(image_id), "objects": {"bbox": boxes, "category": [int(c) for c in objects["category"]]}}

    dataset = dataset.cast_column("image", datasets.Image(decode=False))
    checked = dataset.map(check, with_indices=True, remove_columns=[c for c in dataset.column_names
                                                                      if c not in FEATURES], desc="checking boxes")
    return checked.cast(FEATURES)


# ---------------------------------------------------------------- transforms
def _resize(processor) -> v2.Transform:
    """The processor's resize: a fixed height x width, or shortest edge with a cap on the longest."""
    size = processor.size
    if size.get("height") and size.get("width"):
        return v2.Resize((size["height"], size["width"]), antialias=True)
    return v2.Resize(size["shortest_edge"], max_size=size.get("longest_edge"), antialias=True)


@dataclass
class BoxCounts:
    """Training boxes the augmentation saw and dropped (left under `min_box_pixels` by a crop)."""

    seen: int = 0
    dropped: int = 0
    min_box_pixels: float = 2.0


class BoxAugment:
    """Colour, IoU crop, flip and the processor's resize on an image and its boxes (torchvision.transforms.v2).

    Boxes follow every geometric step; boxes a crop cuts off are clipped, and those left smaller than
    `min_box_pixels` are dropped by SanitizeBoundingBoxes and counted in `dropped` (of `seen`), kept in
    `counts` (the run's TaskData passes its own BoxCounts).
    """

    def __init__(self, processor, hflip: bool = True, crop_probability: float = 0.5, colour: bool = True,
                 min_box_pixels: float = 2.0, counts: BoxCounts | None = None):
        head = [v2.RandomPhotometricDistort(p=0.5)] if colour else []
        tail = ([v2.RandomHorizontalFlip()] if hflip else []) + [
            _resize(processor), v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=min_box_pixels), v2.ToImage()]
        crop = [v2.RandomApply([v2.RandomIoUCrop()], p=crop_probability)] if crop_probability > 0 else []
        self.with_boxes = v2.Compose(head + crop + tail)
        self.without_boxes = v2.Compose(head + tail)  # RandomIoUCrop needs at least one box
        self.counts = counts if counts is not None else BoxCounts(min_box_pixels=min_box_pixels)

    @property
    def seen(self) -> int:
        return self.counts.seen

    @property
    def dropped(self) -> int:
        return self.counts.dropped

    def __call__(self, image: Image.Image, boxes: list, categories: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """uint8 image [3, H, W], boxes [N, 4] normalised cx, cy, w, h, and their category indices."""
        target = {"boxes": tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                                    format="XYWH", canvas_size=(image.height, image.width)),
                  "labels": torch.tensor(categories, dtype=torch.long)}
        transform = self.with_boxes if len(boxes) else self.without_boxes
        pixels, target = transform(image, target)
        self.counts.seen += len(boxes)
        self.counts.dropped += len(boxes) - len(target["boxes"])
        return pixels, normalised_centres(target["boxes"], pixels.shape[-2:]), target["labels"]


def normalised_centres(boxes: torch.Tensor, size) -> torch.Tensor:
    """Boxes (any tv_tensors format, or XYWH pixels) as normalised cx, cy, w, h for an image of `size` (h, w)."""
    if isinstance(boxes, tv_tensors.BoundingBoxes):
        boxes = v2.functional.convert_bounding_box_format(boxes, new_format="CXCYWH").as_subclass(torch.Tensor)
    else:
        boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        boxes = torch.cat([boxes[:, :2] + boxes[:, 2:] / 2, boxes[:, 2:]], dim=-1)
    height, width = size
    return boxes / torch.tensor([width, height, width, height], dtype=torch.float32)
