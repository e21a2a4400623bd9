"""Object detection prediction format: images (or a COCO folder) in, COCO results JSON out, boxes drawn on request."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import datasets
from PIL import Image

from shared.inputs.data import DataError
from shared.serving.predict import Inputs, PredictArguments, Predictions, list_images, readable_images
from shared.serving.writers import FolderWriter, JsonListWriter, Writers
from shared.inputs.vision import to_rgb
from tasks.object_detection.data import ANNOTATION_FILE, FEATURES, coco_categories, load_coco_folder
from tasks.object_detection.drawing import draw_detections


@dataclass
class DetectionPredictArguments(PredictArguments):
    threshold: float = field(default=0.0, metadata={
        "help": "Boxes scoring below this are left out of the JSON (COCO evaluation wants them all: keep 0).",
        "range": "[0, 1]"})
    draw_dir: Optional[str] = field(default=None, metadata={"help": "Also write each image with its boxes drawn here."})
    draw_threshold: float = field(default=0.3, metadata={"help": "Score from which a box is drawn.", "range": "[0, 1]"})


class DetectionWriter(Writers):
    """The COCO results list and, with --draw_dir, one drawn image per input.

    `category_ids` (label index -> the input COCO file's category id) renumbers the entries' `category_id`,
    which records() gives as the model's label index; None keeps the label index.
    """

    def __init__(self, opts, category_ids: list[int] | None = None):
        super().__init__(JsonListWriter(opts.output), FolderWriter(opts.draw_dir) if opts.draw_dir else None)
        self.category_ids = category_ids

    def write(self, records: list) -> None:
        results, *drawings = self.writers
        ids = self.category_ids
        results.write([{**entry, "category_id": ids[entry["category_id"]]} if ids else entry
                       for entries, _ in records for entry in entries])
        if drawings:
            drawings[0].write([drawn for _, drawn in records])


class ObjectDetectionPredictions(Predictions):
    options_class = DetectionPredictArguments
    suffixes = (".json",)

    def read(self, task, cfg, opts, labels):
        """A COCO folder (images + _annotations.coco.json: labelled, its ids kept) or any folder of images."""
        folder, allow = Path(opts.input), cfg.allow_paths_outside_data  # as the training readers: links out refused
        if (folder / ANNOTATION_FILE).is_file():
            categories = coco_categories(folder)
            unknown = [name for _, name in categories if name not in labels]
            if unknown:
                raise DataError(f"{folder / ANNOTATION_FILE}: categories {unknown} are not among the model's "
                                f"labels {labels}")
            data = load_coco_folder(folder, {cid: labels.index(name) for cid, name in categories}, verify_images=False,
                                    allow_outside=allow)
            labelled = True
        else:
            paths = list_images(folder, allow)
            sizes = [_size(p) for p in paths]
            data = datasets.Dataset.from_dict({
                "image": [str(p) for p in paths], "image_id": list(range(len(paths))),
                "width": [w for w, _ in sizes], "height": [h for _, h in sizes],
                "objects": [{"bbox": [], "category": []}] * len(paths)}, features=FEATURES)
            labelled = False
        paths = data.cast_column("image", datasets.Image(decode=False))["image"]
        kept, skipped = readable_images([p["path"] for p in paths], [p["path"] for p in paths], opts.strict)
        return Inputs(data if len(kept) == len(data) else data.select(kept), labelled, skipped)

    def step(self, task, cfg, model, batch):
        outputs = model(**{k: v for k, v in batch.items() if k != "labels"})  # no loss: nothing to learn from
        return task.postprocess(batch, outputs)

    def writer(self, cfg, opts, labels):
        return DetectionWriter(opts, _category_ids(Path(opts.input), labels))

    def records(self, cfg, opts, labels, predictions, rows) -> list[tuple]:
        out = []
        for prediction, row in zip(predictions, rows):
            entries = []
            for box, score, label in zip(prediction["boxes"], prediction["scores"], prediction["labels"]):
                if score < opts.threshold:
                    continue
                width, height = row["width"] or float("inf"), row["height"] or float("inf")
                x0, x1 = (min(max(float(v), 0.0), width) for v in box[0::2])  # inside the image, as COCO boxes are
                y0, y1 = (min(max(float(v), 0.0), height) for v in box[1::2])
                entries.append({"image_id": int(row["image_id"]), "category_id": int(label),  # the writer renumbers
                                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                                "score": round(float(score), 5), "file_name": Path(row["image"]["path"]).name})
            drawn = None
            if opts.draw_dir:
                image = draw_detections(to_rgb(Image.open(row["image"]["path"])), prediction, labels, opts.draw_threshold)
                drawn = (Path(row["image"]["path"]).stem + ".png", image)
            out.append((entries, drawn))
        return out


def _category_ids(folder: Path, labels: list[str]) -> list[int] | None:
    """Label index -> category id of a COCO input folder (its ids kept in the results); None for plain images."""
    if not (folder / ANNOTATION_FILE).is_file():
        return None
    ids = {name: cid for cid, name in coco_categories(folder)}
    return [ids.get(name, i) for i, name in enumerate(labels)]


def _size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # unreadable: reported (and skipped) by readable_images right after
        return 0, 0


PREDICTIONS = ObjectDetectionPredictions()
