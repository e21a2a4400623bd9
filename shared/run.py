"""Assembling one run of a task, in the contract's hook order: the engine, export, distillation and prediction
all build through here, so the order is written once.

    load_data -> build_processor(data) -> build_model(labels) -> preprocess(processor, split, ..., data) per split
    -> collate_fn(processor) -> metric(labels)
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

from shared.toolkit.config import ConfigError
from shared.inputs.data import DataError
from shared.task import MetricSpec, Task, TaskData


@dataclass
class Run:
    """What a task built for one run: data, processor, model, model-ready splits, collate function, metric."""

    task: Task
    data: TaskData
    processor: Any
    model: Any
    datasets: dict = field(default_factory=dict)  # split -> preprocessed rows
    collate: Callable | None = None
    metric: MetricSpec | None = None

    @property
    def labels(self) -> list[str] | None:
        return self.data.labels


def build_processor_and_model(task: Task, data: TaskData | None, labels: list[str] | None):
    """The task's processor and model, or one ConfigError line naming the model that does not fit the task."""
    try:
        processor = task.build_processor(data)
        return processor, task.build_model(labels, processor)
    except (ConfigError, DataError):
        raise
    except (OSError, ValueError, KeyError) as err:  # what transformers raises for a missing or foreign model
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"--model_name_or_path {task.cfg.model_name_or_path} cannot be loaded as a {task.name} "
                          f"model ({type(err).__name__}: {reason})") from err


def build_run(task: Task, splits: tuple[str, ...] = ("train", "validation", "test"),
              adapt_model: Callable | None = None, main_process_first: Callable = nullcontext) -> Run:
    """Load the data and build everything a run needs for `splits` (those the data has).

    `adapt_model(model) -> model` wraps the fresh model before preprocessing (LoRA); `main_process_first`
    is accelerate's context manager, so that one process reads and caches before the others.
    """
    with main_process_first():
        data = task.load_data()
    processor, model = build_processor_and_model(task, data, data.labels)
    if adapt_model is not None:
        model = adapt_model(model)
    with main_process_first():
        datasets = {split: task.preprocess(processor, data[split], split, data) for split in splits if split in data}
    return Run(task, data, processor, model, datasets, task.collate_fn(processor), task.metric(data.labels))
