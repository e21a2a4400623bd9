"""Batch prediction with a saved model: the engine's eval path, streamed to a file in input order on the main process."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import torch
import yaml
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from shared.training.checkpoint import read_training_info
from shared.toolkit.config import ConfigError, _Parser
from shared.inputs.data import DataError, folder_files
from shared.evaluation.scoring import split_scalars
from shared.toolkit.runtime import build_accelerator, gather_eval_outputs, start_processes
from shared.run import build_processor_and_model
from shared.task import Task, TaskData
from shared.inputs.vision import check_image


@dataclass
class PredictArguments:
    """Options of every predict.py; a task's Predictions.options_class adds its own."""

    input: Optional[str] = field(default=None, metadata={"help": "File or folder to predict, in the training formats."})
    output: Optional[str] = field(default=None, metadata={"help": "Where the predictions go (format by suffix)."})
    strict: bool = field(default=False, metadata={"help": "Stop at the first unreadable image instead of skipping it."})
    max_predict_samples: Optional[int] = field(default=None, metadata={"help": "Predict only the first N inputs."})


# ---------------------------------------------------------------- the format hooks of a task
@dataclass
class Inputs:
    """What one run's read() found: its state, kept here because a format object is shared by every run."""

    rows: Any  # a Dataset in the task's validation-split shape
    labelled: bool  # whether the rows carry labels (then the predictions are scored)
    skipped: list[str] = field(default_factory=list)  # one message per unreadable image left out, counted at the end


class Predictions:
    """What a task's predictions.py supplies: reading inputs and writing records. Defaults run the eval hooks.
    A format keeps no state between calls (one object serves every run in a process): read() returns the run's."""

    options_class: type = PredictArguments
    suffixes: tuple[str, ...] = ()  # accepted --output suffixes; () = a folder
    # A column of dataset()'s rows whose len() sizes a row (token ids, words, context characters): rows of similar
    # size are predicted together (less padding) within windows of SORT_WINDOW rows, and put back in input order
    # before writing. Needs records() to return one record per row; metrics() gets `raw` in the predicted order.
    length_column: str | None = None

    def labels(self, model_config) -> list[str] | None:
        """Label names in id order, from the saved model's config."""
        id2label = getattr(model_config, "id2label", None) or {}
        return [id2label[i] for i in sorted(id2label)] or None

    def task_data(self, task: Task, cfg, labels: list[str] | None) -> TaskData:
        """The TaskData the saved model implies: its labels, and what load_data would derive from training data."""
        return TaskData({}, labels=labels)

    def read(self, task: Task, cfg, opts, labels: list[str] | None) -> Inputs:
        """The raw rows, whether they carry labels, and the unreadable images left out (readable_images)."""
        raise NotImplementedError

    def build(self, task: Task, cfg, labels: list[str] | None):
        """(processor, model) from the saved model."""
        return build_processor_and_model(task, None, labels)

    def dataset(self, task: Task, cfg, processor, raw, labelled: bool, data: TaskData):
        return task.preprocess(processor, raw, "validation", data)

    def collate(self, task: Task, cfg, processor):
        return task.collate_fn(processor)

    def step(self, task: Task, cfg, model, batch) -> tuple[Any, Any]:
        """(predictions, references) of one batch, before gathering."""
        _, predictions, references = task.eval_step(model, batch)
        return predictions, references

    def writer(self, cfg, opts, labels: list[str] | None):
        raise NotImplementedError

    def records(self, cfg, opts, labels: list[str] | None, predictions, rows: list[dict]) -> list:
        """What the writer gets for one gathered batch; `rows` are the raw inputs (images not decoded)."""
        raise NotImplementedError

    def metrics(self, task: Task, cfg, batches: list[tuple], raw, labels: list[str] | None) -> dict:
        return task.compute_metrics(task.metric(labels), batches, raw)


# ---------------------------------------------------------------- helpers for the formats
def readable_images(paths: Iterable[str], names: Iterable[str], strict: bool) -> tuple[list[int], list[str]]:
    """Indices of the images that open, and one message per image that does not (DataError under --strict)."""
    kept, skipped = [], []
    for index, (path, name) in enumerate(zip(paths, names)):
        try:
            check_image(path, name)
        except DataError as err:
            if strict:
                raise DataError(f"{err} (--strict)") from None
            skipped.append(str(err))
            continue
        kept.append(index)
    if skipped:
        print(f"warning: skipping {len(skipped)} unreadable image(s) of {len(kept) + len(skipped)}; first: "
              f"{skipped[0]} (pass --strict to stop instead)")
    if not kept:
        raise DataError("no readable images to predict" + (f"; first problem: {skipped[0]}" if skipped else ""))
    return kept, skipped


def check_suffix(output: str, suffixes: tuple[str, ...]) -> None:
    suffix = Path(output).suffix.lower()
    if suffixes and suffix not in suffixes:
        raise ConfigError(f"--output {output}: expected a file ending in {' or '.join(suffixes)}")
    if not suffixes and suffix:
        raise ConfigError(f"--output {output}: this task writes one file per image; give a folder name")


# ---------------------------------------------------------------- the loop
def parse_predict_args(task: Task, fmt: Predictions, args: list[str] | None):
    """(task config, predict options); the run's config.yaml beside the model folder supplies the defaults."""
    args = list(sys.argv[1:] if args is None else args)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model_name_or_path")
    known, _ = pre.parse_known_args(args)
    parser = _Parser([task.config_class, fmt.options_class], allow_abbrev=False)
    run_config = Path(known.model_name_or_path or ".").parent / "config.yaml"
    if known.model_name_or_path and run_config.is_file():
        # a permission to read outside the data folder is given per command: training's does not carry over
        names = {f.name for f in dataclasses.fields(task.config_class)} - {"model_name_or_path", "config",
                                                                            "allow_paths_outside_data"}
        saved = yaml.safe_load(run_config.read_text()) or {}
        parser.set_defaults(**{k: v for k, v in saved.items() if k in names})
    try:
        cfg, opts = parser.parse_args_into_dataclasses(args=args)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if not opts.input or not opts.output or not known.model_name_or_path:
        raise ConfigError("give --model_name_or_path <run>/best, --input <file or folder> and --output <path>")
    check_suffix(opts.output, fmt.suffixes)
    return cfg, opts


def _undecoded(raw):
    """The raw rows with image columns left as paths, so writing a batch's records decodes nothing."""
    import datasets

    for name, feature in raw.features.items():
        if isinstance(feature, datasets.Image):
            raw = raw.cast_column(name, datasets.Image(decode=False))
    return raw


def predict(task: Task, fmt: Predictions, cfg, opts) -> dict:
    """Predict every input once (sharded over processes); the main process writes records in input order."""
    start_processes()
    accelerator = build_accelerator(cfg, Path(opts.output).parent)
    _check_trained_task(task, cfg.model_name_or_path)
    labels = fmt.labels(_model_config(cfg.model_name_or_path))
    data = fmt.task_data(task, cfg, labels)
    with accelerator.main_process_first():
        processor, model = fmt.build(task, cfg, labels)
        started = time.perf_counter()  # the rate counts reading, preprocessing, predicting and writing
        inputs = fmt.read(task, cfg, opts, labels)
        raw, labelled = inputs.rows, inputs.labelled
        if opts.max_predict_samples:
            raw = raw.select(range(min(opts.max_predict_samples, len(raw))))
        dataset = fmt.dataset(task, cfg, processor, raw, labelled, data)
        order = _length_order(dataset, fmt.length_column) if fmt.length_column in dataset.column_names else None
        if order is not None:
            dataset = dataset.select(order)
    loader = DataLoader(dataset, batch_size=cfg.per_device_eval_batch_size, shuffle=False,
                        collate_fn=fmt.collate(task, cfg, processor), num_workers=cfg.dataloader_num_workers)
    if isinstance(model, torch.nn.Module):
        model.eval()
        model, loader = accelerator.prepare(model, loader)
    else:  # a pipeline: only the loader is sharded
        loader = accelerator.prepare(loader)
    accelerator.print(f"[{task.name}] predicting {len(raw)} inputs from {opts.input} with {cfg.model_name_or_path}\n"
                      f"  processes {accelerator.num_processes} ({accelerator.distributed_type.value}), device "
                      f"{accelerator.device}, precision {accelerator.mixed_precision}, batch "
                      f"{cfg.per_device_eval_batch_size} per process, labels in the input: {'yes' if labelled else 'no'}")
    done, metrics = _stream(accelerator, task, fmt, cfg, opts, labels, model, loader, raw, labelled, order)
    scalars, others = split_scalars(metrics)
    results = {f"predict_{k}": v for k, v in {**scalars, **others}.items()}
    seconds = time.perf_counter() - started
    results.update({"predict_samples": done, "predict_runtime": round(seconds, 3),
                    "predict_samples_per_second": round(done / max(seconds, 1e-9), 3),
                    "model": str(cfg.model_name_or_path), "input": str(opts.input)})
    if accelerator.is_main_process:
        _report(opts, inputs.skipped, results, scalars if labelled else None)
    accelerator.end_training()
    return results


def _check_trained_task(task: Task, reference: str) -> None:
    """A model whose training_info.json names another task is refused, naming the predict.py that fits it."""
    trained_for = read_training_info(Path(reference)).get("task")
    if trained_for and trained_for != task.name:
        raise ConfigError(f"--model_name_or_path {reference} was trained for {trained_for} (its training_info.json); "
                          f"predict with tasks/{trained_for}/predict.py")


def _model_config(reference: str):
    from transformers import AutoConfig

    looks_local = reference.startswith((".", "/", "~")) or reference.count("/") > 1
    if looks_local and not Path(reference).expanduser().exists():
        raise ConfigError(f"--model_name_or_path {reference}: no such model folder")
    try:
        return AutoConfig.from_pretrained(reference)
    except (OSError, ValueError) as err:
        raise ConfigError(f"--model_name_or_path {reference}: not a saved model folder ({err})") from None


def _stream(accelerator, task: Task, fmt: Predictions, cfg, opts, labels, model, loader, raw, labelled: bool,
            order: list[int] | None):
    """(inputs predicted, metrics): each gathered batch written as it finishes; the output renamed only when complete."""
    main, rows = accelerator.is_main_process, _undecoded(raw)
    writer = fmt.writer(cfg, opts, labels) if main else None
    batches, done, pending, written = [], 0, {}, 0
    bar = tqdm(total=len(raw), unit="input", desc="predict", disable=not accelerator.is_local_main_process)
    try:
        with torch.no_grad():
            for batch in loader:
                predictions, references = fmt.step(task, cfg, model, batch)
                predictions = gather_eval_outputs(accelerator, predictions)
                references = gather_eval_outputs(accelerator, references, task.reference_pad_value)
                if labelled:  # kept for the metrics only; unlabelled runs hold nothing across batches
                    batches.append((predictions, references))
                count = len(predictions)
                if main:  # the gathered batch is positions done..done+count of the (length-ordered) input
                    indices = [order[i] for i in range(done, done + count)] if order else range(done, done + count)
                    records = fmt.records(cfg, opts, labels, predictions, rows.select(indices).to_list())
                    if order is None:
                        writer.write(records)
                    else:  # back in input order: rows wait at most one sort window
                        pending.update(zip(indices, records))
                        ready = []
                        while written in pending:
                            ready.append(pending.pop(written))
                            written += 1
                        writer.write(ready)
                done += count
                bar.update(count)
        bar.close()
        # the rows in the order they were predicted in, so a metric pairing them with the batches lines up
        metrics = fmt.metrics(task, cfg, batches, raw.select(order) if order else raw, labels) if labelled else {}
        if main:
            writer.commit()
    except BaseException:
        if main:
            writer.abort()
        raise
    return done, metrics


SORT_WINDOW = 1024  # rows sorted by length together: the reordering buffer stays this small


def _length_order(dataset, column: str) -> list[int]:
    """Row positions sorted by len(row[column]) within consecutive windows of SORT_WINDOW rows (a window at a time)."""
    order: list[int] = []
    for start, window in enumerate(dataset.select_columns([column]).iter(batch_size=SORT_WINDOW)):
        lengths = [len(value) for value in window[column]]
        order.extend(start * SORT_WINDOW + i for i in sorted(range(len(lengths)), key=lengths.__getitem__))
    return order


def _report(opts, skipped: list[str], results: dict, metrics: dict | None) -> None:
    """predict_results.json when the inputs were scored, and the closing lines (with the count of skipped images)."""
    lines = [f"\npredictions  {opts.output}  ({results['predict_samples']} inputs in {results['predict_runtime']:.2f} s, "
             f"{results['predict_samples_per_second']:.1f} inputs/s)"]
    if skipped:
        lines.append(f"skipped      {len(skipped)} unreadable image(s); first: {skipped[0]}")
    if metrics is not None:
        path = Path(opts.output).parent / "predict_results.json"
        _write_json(path, results)
        lines.append(f"metrics      {path}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    print("\n".join(lines))


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=1, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))
    os.replace(tmp, path)


def list_images(folder: str | Path, allow_outside: bool = False) -> list[Path]:
    """Every image under `folder` (recursively), in sorted path order: the order predictions are written in. Listed
    by shared.inputs.data.folder_files, as the training readers list theirs: a symbolic link that leads out of
    `folder` is refused unless `allow_outside` (the task config's --allow_paths_outside_data)."""
    from shared.inputs.vision import IMAGE_EXTENSIONS

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    images = sorted(p for p in folder_files(root, allow_outside) if p.suffix.lower() in IMAGE_EXTENSIONS
                    and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not images:
        raise DataError(f"{root}: no images (extensions {sorted(IMAGE_EXTENSIONS)[:8]}...)")
    return images
