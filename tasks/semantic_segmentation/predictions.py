"""Semantic segmentation prediction format: images (or images/ + masks/) in, one index-PNG mask per image out."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import datasets
import numpy as np
import torch
from PIL import Image

from shared.inputs.data import DataError
from shared.serving.predict import Inputs, PredictArguments, Predictions, list_images, readable_images
from shared.serving.writers import FolderWriter, Writers
from shared.inputs.vision import to_rgb
from tasks.semantic_segmentation.data import find_labels_file, load_folder, read_labels, saved_model_table
from tasks.semantic_segmentation.report import overlay, palette
from tasks.semantic_segmentation.task import SegmentationData
from tasks.semantic_segmentation.transforms import eval_transform


@dataclass
class SegmentationPredictArguments(PredictArguments):
    overlay_dir: Optional[str] = field(default=None, metadata={"help": "Also write each image with its mask blended over it."})


class MaskWriter(Writers):
    """The masks folder and, with --overlay_dir, the overlays folder: both renamed into place at the end."""

    def __init__(self, opts):
        super().__init__(FolderWriter(opts.output), FolderWriter(opts.overlay_dir) if opts.overlay_dir else None)

    def write(self, records: list) -> None:
        masks, *overlays = self.writers
        masks.write([mask for mask, _ in records])
        if overlays:
            overlays[0].write([drawn for _, drawn in records])


class SemanticSegmentationPredictions(Predictions):
    options_class = SegmentationPredictArguments
    suffixes = ()  # a folder

    def task_data(self, task, cfg, labels):
        """The saved model's labels and the value table preprocess maps labelled input masks with."""
        table = saved_model_table(len(labels), cfg.reduce_labels)
        return SegmentationData({}, labels=list(labels), table=torch.from_numpy(table.astype(np.int64)))

    def read(self, task, cfg, opts, labels):
        """A folder with images/ and masks/ (and labels.json beside them: labelled) or any folder of images."""
        folder, allow = Path(opts.input), cfg.allow_paths_outside_data  # as the training readers: links out refused
        labelled = (folder / "masks").is_dir()
        if labelled:
            data = load_folder(folder, "--input", allow)
            label_set = read_labels(find_labels_file(folder))
            if len(label_set.names) - int(cfg.reduce_labels) != len(labels):
                raise DataError(f"{find_labels_file(folder)}: {len(label_set.names)} classes, but the model has "
                                f"{len(labels)} {labels}")
        else:
            data = datasets.Dataset.from_dict({"image": [str(p) for p in list_images(folder, allow)]})
            data = data.cast_column("image", datasets.Image())
        paths = [item["path"] for item in data.cast_column("image", datasets.Image(decode=False))["image"]]
        kept, skipped = readable_images(paths, paths, opts.strict)
        return Inputs(data if len(kept) == len(data) else data.select(kept), labelled, skipped)

    def dataset(self, task, cfg, processor, raw, labelled, data):
        if labelled:
            return task.preprocess(processor, raw, "validation", data)
        transform = eval_transform(processor)

        def apply(batch: dict) -> dict:
            """As the task's validation transform, with an empty mask of the image's size to size the logits."""
            pairs = [transform(image, torch.zeros(image.height, image.width, dtype=torch.long))
                     for image in (to_rgb(i) for i in batch["image"])]
            return {"pixel_values": [p for p, _ in pairs], "labels": [m for _, m in pairs]}

        return raw.with_transform(apply, columns=["image"])

    def writer(self, cfg, opts, labels):
        return MaskWriter(opts)

    def records(self, cfg, opts, labels, predictions, rows) -> list[tuple]:
        colours, out = palette(len(labels)), []
        for predicted, row in zip(predictions, rows):
            path = Path(row["image"]["path"])
            image = to_rgb(Image.open(path))
            ids = np.asarray(predicted)[:image.height, :image.width].astype(np.uint8)  # batch padding cut off
            mask = Image.fromarray(ids)
            mask.putpalette(colours[:-1].flatten().tolist())  # an index PNG: viewers show colours, values are class ids
            drawn = (path.stem + ".png", overlay(image, ids, colours)) if opts.overlay_dir else None
            out.append(((path.stem + ".png", mask), drawn))
        return out


PREDICTIONS = SemanticSegmentationPredictions()
