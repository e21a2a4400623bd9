"""Demo examples from a saved model's own validation data: the run's config.yaml beside best/ names the data, the
task's prediction reader reads it, and the task's DemoSpec.examples_from hook picks the rows to show."""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.task import DemoSpec, Task
from shared.toolkit.models import cache_dir

log = logging.getLogger(__name__)
EXAMPLE_COUNT = 6  # examples taken from a model's validation data; the task's hook picks which (one per class...)

@dataclass
class ValidationSource:
    """What a spec's `examples_from(source, n)` hook gets: the validation split of the run that saved the model."""

    cfg: Any  # the run's config (its config.yaml): the column names and options the task's readers used
    rows: Any  # datasets.Dataset of the raw validation rows, shaped as training's validation split
    where: str  # what they were read from, shown above the examples


def validation_source(task_class: type[Task], model: str) -> ValidationSource | None:
    """The validation data of the run that saved `model`, read with its task's own readers; None when this
    machine cannot reach it (a hub id, a folder copied without its run, data moved or offline)."""
    folder = Path(model)
    recipe = folder.parent / "config.yaml"  # written beside best/ and last/; training_info.json names no full paths
    if not folder.is_dir() or not recipe.is_file():
        return None
    try:
        cfg = _run_config(task_class.config_class, recipe, folder)
        given = _data_paths(cfg, "validation")
        if given and not Path(given[0]).exists():
            log.warning("examples: the validation data %s is not on this machine; showing the embedded ones", given[0])
            return None
        rows = _read_split(task_class(cfg), cfg, given[0], folder) if given else None
        if rows is None:  # a hub dataset, a --validation_split carved from train, or the embedded sample data
            rows = task_class(cfg).load_data()["validation"]
        return ValidationSource(cfg, rows, given[0] if given else _described(cfg))
    except Exception as err:  # the demo still starts, with the embedded examples
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        log.warning("examples: could not read the validation data of %s (%s); showing the embedded ones", model, reason)
        return None


def _data_paths(cfg, split: str) -> list[str]:
    """The files or folders a config names for one split (its --<split>_file / --<split>_dir options)."""
    return [str(value) for name, value in vars(cfg).items()
            if name.startswith(f"{split}_") and name.endswith(("_file", "_dir")) and value]


def _run_config(config_class: type, recipe: Path, model_dir: Path):
    """The config a run saved (config.yaml: the dataclass's own fields, dumped by save_config), for the saved model."""
    import yaml

    saved = yaml.safe_load(recipe.read_text()) or {}
    names = {f.name for f in dataclasses.fields(config_class) if f.init} - {"config", "model_name_or_path"}
    return config_class(**{k: v for k, v in saved.items() if k in names}, model_name_or_path=str(model_dir))


def _read_split(task: Task, cfg, path: str, model_dir: Path):
    """One validation file or folder through the task's prediction reader (Task.prediction_format()), which
    reads only that split in the training formats; None for a task without one (load_data reads it then)."""
    from transformers import AutoConfig

    fmt = task.prediction_format()
    if fmt is None:
        return None
    opts = fmt.options_class(input=str(path), output=str(model_dir / "demo-unused"))
    rows = fmt.read(task, cfg, opts, fmt.labels(AutoConfig.from_pretrained(model_dir))).rows
    return rows


def _described(cfg) -> str:
    """Where a split that no validation option names came from, for the examples' heading."""
    if cfg.dataset_name:
        return f"{cfg.dataset_name}, validation split"
    train = _data_paths(cfg, "train")
    return f"the part of {train[0]} held out for validation" if train else "the embedded sample data"


def demo_examples(task_class: type[Task], spec: DemoSpec, model: str, n: int = EXAMPLE_COUNT) -> tuple[list, str]:
    """(examples, their label on the page): from the model's own validation data through the spec's
    `examples_from` hook when this machine can read it, else the spec's embedded examples."""
    hook = spec.examples_from
    source = validation_source(task_class, model) if hook else None
    if source is not None:
        try:
            examples = [list(example) for example in hook(source, n)]
        except Exception as err:
            log.warning("examples: %s's hook failed on %s (%s); showing the embedded ones", task_class.name,
                        source.where, err)
            examples = []
        if examples:
            return examples, f"Examples from the validation data: {source.where}"
    return spec.examples, "Examples"


def spread(values: list, n: int) -> list[int]:
    """Indices of up to n rows taken in turn from each distinct value (one example per class, then a second per
    class, ...), classes in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for index, value in enumerate(values):
        groups.setdefault(json.dumps(value, sort_keys=True, default=str), []).append(index)  # lists too (multi-label)
    turns = itertools.zip_longest(*groups.values())
    return [index for turn in turns for index in turn if index is not None][:n]


def evenly(count: int, n: int) -> list[int]:
    """Indices of up to n of `count` rows spaced evenly from the first (video frames side by side look alike)."""
    return [i * count // n for i in range(n)] if count > n else list(range(count))


def image_files(rows, column: str, indices: list[int]) -> list[str]:
    """Image files of the chosen rows for gr.Examples: each image's own file, or, for images held as bytes (hub
    datasets), a copy written once into the suite's cache."""
    import datasets

    items = rows.cast_column(column, datasets.Image(decode=False)).select(indices)[column]
    files = []
    for item in items:
        path = item.get("path")
        if path and Path(path).is_file():
            files.append(str(Path(path).resolve()))
            continue
        data = item["bytes"]
        folder = cache_dir() / "demo" / "validation_images"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (hashlib.sha1(data).hexdigest()[:20] + _image_suffix(data))
        if not target.is_file():  # written beside the target, then renamed: a reader never sees half a file
            handle, tmp = tempfile.mkstemp(dir=folder)
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        files.append(str(target))
    return files


def _image_suffix(data: bytes) -> str:
    """The file extension of encoded image bytes (gradio serves an example's type by its name)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return "." + (image.format or "png").lower()
