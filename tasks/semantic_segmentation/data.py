"""Semantic segmentation data: images/ + masks/ folders with labels.json, or a hub dataset, checked pixel by pixel."""
from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from datasets import DatasetDict
from PIL import Image

from shared.toolkit.config import ConfigError
from shared.inputs.data import DataError, folder_files, kind_of, load_hub_or_files, parse_json, require_columns
from shared.inputs.vision import IMAGE_EXTENSIONS, check_image

IGNORE = 255  # the ignore value inside the suite: every source's own ignore index is mapped onto it
SAMPLE_SIZE = 128  # model input side on the embedded sample data (64x64 scenes, upscaled) unless given
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")  # lossless only: JPEG would blur class ids


@dataclass
class LabelSet:
    """Class names in id order and the mask value meaning 'not labelled' (None if every pixel has a class)."""

    names: list[str]
    ignore_index: int | None


# ---------------------------------------------------------------- labels
def read_labels(path: Path) -> LabelSet:
    """labels.json: {"id2label": {"0": "sky", ...}, "ignore_index": 11} (or a bare {"0": "sky", ...})."""
    if not path.is_file():
        raise DataError(f"{path}: cannot read labels (no such file)")
    raw = parse_json(path)
    mapping = raw.get("id2label", raw) if isinstance(raw, dict) else None
    try:
        ids = sorted(int(k) for k in mapping)
        names = {int(k): v for k, v in mapping.items()}
    except (AttributeError, TypeError, ValueError):
        raise DataError(f"{path}: expected {{\"id2label\": {{\"0\": \"name\", ...}}, \"ignore_index\": N}}") from None
    if ids != list(range(len(ids))) or len(ids) < 2:
        raise DataError(f"{path}: id2label needs ids 0..N-1 (at least two classes), got {ids}")
    bad = next((i for i in ids if not isinstance(names[i], str)), None)
    if bad is not None:
        raise DataError(f"{path}: the name of class {bad} must be a string, got {kind_of(names[bad])}")
    ignore = raw.get("ignore_index") if "id2label" in raw else None
    if ignore is not None and (isinstance(ignore, bool) or not isinstance(ignore, int) or not 0 <= ignore <= 255):
        raise DataError(f"{path}: ignore_index must be a mask value 0-255 (or null), got {ignore!r}")
    if ignore is not None and ignore in ids:
        raise DataError(f"{path}: ignore_index {ignore} is also a class id ({names[ignore]!r})")
    return LabelSet([names[i] for i in ids], ignore)


def reduce(labels: LabelSet) -> LabelSet:
    """--reduce_labels: class 0 (background/'other') becomes ignored and every other id moves down by one."""
    return LabelSet(labels.names[1:], labels.ignore_index)


def value_table(labels: LabelSet, reduce_labels: bool, size: int = 256) -> np.ndarray:
    """Lookup table raw mask value -> training id (IGNORE for ignored values, -1 for values outside the label set).

    `labels` is the label set as the data defines it (before --reduce_labels drops class 0)."""
    table = np.full(size, -1, dtype=np.int16)
    count = len(labels.names)  # the raw label set, before any reduction
    table[:count] = np.arange(count) - (1 if reduce_labels else 0)
    if reduce_labels:
        table[0] = IGNORE
    if reduce_labels:  # as transformers' do_reduce_labels: 255 stays ignored
        table[IGNORE] = IGNORE
    if labels.ignore_index is not None and labels.ignore_index < size:
        table[labels.ignore_index] = IGNORE
    return table


def saved_model_table(num_labels: int, reduce_labels: bool, size: int = 256) -> np.ndarray:
    """The value table a saved model implies (prediction): its class values as trained (with --reduce_labels,
    value 0 ignored and 1..N its classes), every other value IGNORE. An input folder's own ignore index
    (any value outside its label set) is ignored either way, so the masks equal those its labels.json gives."""
    raw_count = num_labels + (1 if reduce_labels else 0)
    table = value_table(LabelSet([""] * raw_count, None), reduce_labels, size)
    table[table < 0] = IGNORE
    return table


def allowed_values(table: np.ndarray) -> str:
    """The raw mask values a table accepts, for error messages ("0-10, ignore 11")."""
    classes = np.flatnonzero((table >= 0) & (table != IGNORE))
    ignored = np.flatnonzero(table == IGNORE).tolist()
    return f"{classes.min()}-{classes.max()}" + (f", ignore {ignored}" if ignored else "")


def find_labels_file(split_dir: Path) -> Path:
    """labels.json in the split folder or its parent (shared by every split)."""
    for candidate in (split_dir / "labels.json", split_dir.parent / "labels.json"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{split_dir}: no labels.json in it or its parent; write one like "
                    '{"id2label": {"0": "background", "1": "road"}, "ignore_index": 255}')


# ---------------------------------------------------------------- folders
def load_folder(split_dir: Path, flag: str, allow_outside: bool = False) -> datasets.Dataset:
    """`split_dir/images/*` paired by stem with `split_dir/masks/*.png`; every image needs its mask. Listed by
    shared.inputs.data.folder_files: a symbolic link out of `split_dir` is refused unless `allow_outside`."""
    images_dir, masks_dir = split_dir / "images", split_dir / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(f"{flag} {split_dir}: expected subfolders images/ and masks/; {folder} is missing")
    listed = {folder: folder_files(folder, allow_outside, base=split_dir, recursive=False)
              for folder in (images_dir, masks_dir)}
    images = [p for p in listed[images_dir] if p.suffix.lower() in IMAGE_EXTENSIONS]
    masks = {p.stem: p for p in listed[masks_dir] if p.suffix.lower() in MASK_EXTENSIONS}
    if not images:
        raise DataError(f"{images_dir}: no images")
    missing = [p for p in images if p.stem not in masks]
    if missing:
        raise DataError(f"{missing[0]}: image without a mask (expected {masks_dir}/{missing[0].stem}.png); "
                        f"{len(missing)} of {len(images)} images have none")
    orphans = sorted(set(masks) - {p.stem for p in images})
    if orphans:
        print(f"note: {masks_dir}: {len(orphans)} masks without an image ignored (for example {orphans[0]})")
    table = {"image": [str(p) for p in images], "mask": [str(masks[p.stem]) for p in images]}
    features = datasets.Features({"image": datasets.Image(), "mask": datasets.Image()})
    return datasets.Dataset.from_dict(table, features=features)


def uses_sample_data(cfg) -> bool:
    """True when no data source is given: the run trains on the embedded sample scenes."""
    return not cfg.dataset_name and not cfg.train_dir


def input_size(cfg, sample_data: bool) -> tuple[int, int] | None:
    """(height, width) of the model input: --image_height/--image_width, else SAMPLE_SIZE on the embedded
    sample data; None keeps the processor's own (or the packaged backbone's default)."""
    if cfg.image_height:
        return cfg.image_height, cfg.image_width
    return (SAMPLE_SIZE, SAMPLE_SIZE) if sample_data else None


def load_raw(cfg, default_dir) -> tuple[DatasetDict, LabelSet, dict[str, str]]:
    """Splits with `image` and `mask` columns (datasets.Image), the label set as the data defines it, and
    split -> the folder (or hub split) it was read from."""
    sources = [name for name in ("dataset_name", "train_dir") if getattr(cfg, name)]
    if len(sources) > 1:
        raise ConfigError(f"give one data source, not {['--' + s for s in sources]}")
    if uses_sample_data(cfg):  # the embedded default: generated shapes, drawn once into the cache
        folder = default_dir()  # a copy of the config names its folders; the run's config stays as given
        cfg = dataclasses.replace(cfg, train_dir=str(folder / "train"), validation_dir=str(folder / "validation"))
    if cfg.dataset_name:
        return _load_hub(cfg)
    allow = cfg.allow_paths_outside_data
    splits = {"train": load_folder(Path(cfg.train_dir), "--train_dir", allow)}
    where = {"train": str(cfg.train_dir)}
    for split, folder in (("validation", cfg.validation_dir), ("test", cfg.test_dir)):
        if folder:
            splits[split], where[split] = load_folder(Path(folder), f"--{split}_dir", allow), str(folder)
    labels_file = Path(cfg.labels_file) if cfg.labels_file else find_labels_file(Path(cfg.train_dir))
    return DatasetDict(splits), read_labels(labels_file), where


def _load_hub(cfg) -> tuple[DatasetDict, LabelSet, dict[str, str]]:
    data, where = load_hub_or_files(cfg)
    for split, dataset in data.items():
        require_columns(dataset, [cfg.image_column, cfg.mask_column], where[split])
    renames = {cfg.image_column: "image", cfg.mask_column: "mask"}
    data = DatasetDict({k: v.rename_columns({a: b for a, b in renames.items() if a != b}) for k, v in data.items()})
    if cfg.labels_file:
        return data, read_labels(Path(cfg.labels_file)), where
    from huggingface_hub import hf_hub_download  # the layout of the transformers segmentation example

    try:
        path = hf_hub_download(cfg.dataset_name, "id2label.json", repo_type="dataset")
    except Exception as err:
        raise DataError(f"{cfg.dataset_name}: no id2label.json in the dataset repo ({type(err).__name__}); "
                        "pass --labels_file labels.json") from None
    return data, LabelSet(read_labels(Path(path)).names, cfg.ignore_index), where


# ---------------------------------------------------------------- checks
def _describe(dataset: datasets.Dataset, row: int, column: str, split: str) -> str:
    item = dataset[row][column]
    return item.get("path") or f"{split} row {row} ({column})"


def check_and_count(data: DatasetDict, table: np.ndarray, num_labels: int, verify: bool) -> np.ndarray:
    """Check every image/mask pair; return per-class pixel counts of the training masks.

    Raises DataError naming the file for: an unreadable image or mask, a mask of another size than its
    image, a colour (RGB) mask, a mask value outside the label set.
    """
    counts = np.zeros(num_labels, dtype=np.int64)
    for split, dataset in data.items():
        raw = dataset.cast_column("image", datasets.Image(decode=False)).cast_column("mask", datasets.Image(decode=False))
        for row in range(len(raw)):
            image_item, mask_item = raw[row]["image"], raw[row]["mask"]
            image_name = _describe(raw, row, "image", split)
            mask_name = _describe(raw, row, "mask", split)
            if verify:
                check_image(image_item["bytes"] or image_item["path"], image_name)
            mask = _open_mask(mask_item, mask_name)
            image_size = _image_size(image_item, image_name)
            if mask.shape[::-1] != image_size:
                raise DataError(f"{mask_name}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {image_name} is "
                                f"{image_size[0]}x{image_size[1]}; masks must match their image pixel for pixel")
            ids = table[mask]
            if (ids < 0).any():
                bad = sorted(set(np.unique(mask[ids < 0]).tolist()))
                raise DataError(f"{mask_name}: mask values {bad[:10]} are outside the label set "
                                f"(allowed: {allowed_values(table)})")
            if split == "train":
                counts += np.bincount(ids[ids != IGNORE].ravel(), minlength=num_labels)[:num_labels]
    return counts


def _source(item: dict):
    return io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"]


def _image_size(item: dict, name: str) -> tuple[int, int]:
    try:
        with Image.open(_source(item)) as image:  # reads the header only
            return image.size
    except Exception as err:
        raise DataError(f"{name}: unreadable image ({type(err).__name__}: {err})") from None


def _open_mask(item: dict, name: str) -> np.ndarray:
    try:
        with Image.open(_source(item)) as mask:
            if mask.mode not in ("L", "P", "I", "I;16", "1"):
                raise DataError(f"{name}: mask has mode {mask.mode}; expected a single-channel index PNG "
                                "(one class id per pixel, mode L or P), not a colour image")
            array = np.asarray(mask)
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"{name}: unreadable mask ({type(err).__name__}: {err})") from None
    if array.max(initial=0) > 255:
        raise DataError(f"{name}: mask values up to {array.max()} (more than 255 is not supported)")
    return array.astype(np.uint8)
