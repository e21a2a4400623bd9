"""Image classification prediction format: an image folder or a table of paths in, CSV of top-k labels and scores out."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import datasets

from shared.inputs.data import DataError, inside_data_folder, load_table, require_columns, row_name
from shared.serving.predict import Inputs, PredictArguments, Predictions, list_images, readable_images
from shared.serving.writers import CsvWriter

MULTI = "multi_label_classification"


@dataclass
class ImagePredictArguments(PredictArguments):
    top_k: int = field(default=5, metadata={"help": "Labels (with scores) written per image.", "range": "[1, inf)"})


class ImageClassificationPredictions(Predictions):
    options_class = ImagePredictArguments
    suffixes = (".csv",)

    def labels(self, model_config) -> list[str]:
        names = getattr(model_config, "label_names", None)  # timm wrappers keep their names here
        return list(names) if names else super().labels(model_config)

    def read(self, task, cfg, opts, labels):
        """A folder of images (class subfolders make it labelled) or a CSV/JSONL of image paths (and labels)."""
        source = Path(opts.input)
        if source.is_dir():
            paths = list_images(source, cfg.allow_paths_outside_data)
            in_classes = all(len(p.relative_to(source).parts) == 2 for p in paths)
            values = [p.parent.name for p in paths] if in_classes else None
            names = [str(p) for p in paths]
        else:
            table = load_table(source)
            require_columns(table, [cfg.image_column], str(source))
            # the training reader's rule: a path may not leave the table's folder unless --allow_paths_outside_data
            paths = [inside_data_folder(source.parent / str(v).strip(), source.parent, cfg.allow_paths_outside_data,
                                        row_name(str(source), i)) for i, v in enumerate(table[cfg.image_column])]
            names = [f"{row_name(str(source), i)}: {p}" for i, p in enumerate(paths)]
            values = list(table[cfg.label_column]) if cfg.label_column in table.column_names else None
        kept, skipped = readable_images([str(p) for p in paths], names, opts.strict)
        ids = [self._encode(cfg, values[i], labels, names[i]) for i in kept] if values else None
        default = [] if cfg.problem_type == MULTI else 0
        rows = {"image": [str(paths[i]) for i in kept], "label": ids or [default] * len(kept)}
        return Inputs(datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()), values is not None,
                      skipped)

    @staticmethod
    def _encode(cfg, value, labels: list[str], where: str):
        parts = ([] if value is None else value if isinstance(value, list) else str(value).split(cfg.label_separator)) \
            if cfg.problem_type == MULTI else [value]
        ids = []
        for part in parts:
            text = str(part).strip()
            if text in labels:
                ids.append(labels.index(text))
            elif text.isdigit() and int(text) < len(labels):
                ids.append(int(text))
            else:
                raise DataError(f"{where}: unknown label {part!r}; the model's labels are {labels}")
        return ids if cfg.problem_type == MULTI else ids[0]

    def writer(self, cfg, opts, labels):
        k = min(opts.top_k, len(labels))
        columns = [c for i in range(1, k + 1) for c in (f"label_{i}", f"score_{i}")]
        return CsvWriter(opts.output, ["image"] + (["predicted"] if cfg.problem_type == MULTI else []) + columns)

    def records(self, cfg, opts, labels, predictions, rows) -> list[dict]:
        k, out = min(opts.top_k, len(labels)), []
        for scores, row in zip(predictions, rows):
            record = {"image": row["image"]["path"]}
            if cfg.problem_type == MULTI:
                thresholds = cfg.thresholds * len(labels) if len(cfg.thresholds) == 1 else cfg.thresholds
                record["predicted"] = cfg.label_separator.join(n for n, s, t in zip(labels, scores, thresholds) if s >= t)
            for rank, index in enumerate(scores.argsort()[::-1][:k], start=1):
                record[f"label_{rank}"], record[f"score_{rank}"] = labels[index], round(float(scores[index]), 6)
            out.append(record)
        return out


PREDICTIONS = ImageClassificationPredictions()
