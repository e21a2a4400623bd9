"""The Task contract (the hooks a task supplies) and the task registry."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from shared.training.losses import LossSettings


LOWER_IS_BETTER_WORDS = ("loss", "mse", "mae", "error")  # mse also covers rmse


def greater_is_better(metric: str) -> bool:
    """The one rule for every task's main metric: losses and errors fall, scores rise."""
    return not any(word in metric.lower() for word in LOWER_IS_BETTER_WORDS)


@dataclass
class MetricSpec:
    """An evaluate module, the kwargs for its compute(), and which key decides 'best' (its direction by
    greater_is_better(main), unless a task states it)."""

    module: Any
    main: str
    greater_is_better: bool | None = None
    compute_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.greater_is_better is None:
            self.greater_is_better = greater_is_better(self.main)


@dataclass
class DemoSpec:
    """What a Gradio demo needs: components, examples and a predict(pipe, *inputs) function.

    shared/serving/demo.py checks every gr.Textbox and gr.Image input before `predict` sees it: empty text is
    refused, text past `max_chars` is cut with a notice, images arrive as RGB PIL images no larger than
    `max_image_side`. With `predict_batch(pipe, rows) -> one output per row`, concurrent requests are
    merged into one pipeline call of up to `max_batch_size` rows.
    """

    pipeline_tag: str
    inputs: Callable[[], list]
    outputs: Callable[[], list]
    predict: Callable[..., Any]
    examples: list = field(default_factory=list)
    title: str = ""
    description: str = ""
    predict_batch: Callable[[Any, list[tuple]], list] | None = None
    max_batch_size: int = 8
    max_chars: int = 10_000
    max_image_side: int = 2048
    # examples_from(source, n) -> up to n example rows from the saved model's own validation data
    # (a shared.serving.examples.ValidationSource); None, or data not on this machine: `examples` above
    examples_from: Callable[[Any, int], list] | None = None


@dataclass
class TaskData:
    """What load_data() found: the raw splits and everything derived from them, handed to later hooks.

    Tasks that derive more (a mask value table, the texts a tokenizer is trained on) subclass it with
    typed fields. Indexing reads the splits: `data["train"]`, `"test" in data`.
    """

    splits: Any  # datasets.DatasetDict with "train" and "validation", and "test" when one was given
    labels: list[str] | None = None  # class names in id order; None where outputs are not classes
    label_ids: list[int] | None = None  # per-row training classes (weighted sampler); None for dense tasks
    label_counts: list[int] | None = None  # training count per label id (pixels for dense tasks)
    warnings: list[str] = field(default_factory=list)  # findings for the data report (tags repaired while reading)
    sources: dict[str, str] = field(default_factory=dict)  # split -> the file or folder it was read from

    @classmethod
    def from_splits(cls, splits, **fields) -> "TaskData":
        """Labels, per-row classes and counts read from the train split's ClassLabel "label" column, if any."""
        feature = splits["train"].features.get("label")
        if hasattr(feature, "names") and "labels" not in fields:
            ids = list(splits["train"]["label"])
            fields = {"labels": list(feature.names), "label_ids": ids,
                      "label_counts": _counts(ids, len(feature.names)), **fields}
        return cls(splits, **fields)

    def notes(self) -> list[str]:
        """Lines printed at the end of training: what the task counted while it ran (override to add some)."""
        return []

    def __getitem__(self, split: str):
        return self.splits[split]

    def __contains__(self, split: str) -> bool:
        return split in self.splits

    def get(self, split: str, default=None):
        return self.splits[split] if split in self.splits else default

    def items(self):
        return self.splits.items()


def _counts(ids: list[int], num_labels: int) -> list[int]:
    from shared.training.losses import label_counts

    return label_counts(ids, num_labels)


class Task:
    """Base class of every task, built with its parsed config: `get_task(name)(cfg)`.

    The config is read-only (`self.cfg`); what a hook derives from data travels in the TaskData that
    load_data() returns and later hooks receive, never on `self` (tests/tasks/test_contract.py checks).
    Hooks take plain data and return plain data: no accelerate, no devices. The hook order is the one
    shared/run.py's build_run() follows.
    """

    name: str = ""
    config_class: type = object
    pipeline_tag: str = ""
    # fills references where processes' eval batches differ in size before gathering: a value the metric ignores
    reference_pad_value: int = 0

    def __init__(self, cfg):
        self.cfg = cfg

    def load_data(self) -> TaskData:
        raise NotImplementedError

    def build_processor(self, data: TaskData | None):
        """The tokenizer or image processor. `data` is None when a saved model is reloaded (predict, export)."""
        raise NotImplementedError

    def build_model(self, labels: list[str] | None, processor=None):
        """The model for `labels`; `processor` is the run's (None for a distillation teacher or int8 reload),
        for tasks whose model is sized by it (a tokenizer trained on the data)."""
        raise NotImplementedError

    def lr_overrides(self, model) -> dict[str, float] | None:
        """Parameter-name prefix -> learning rate, for discriminative rates (for example the backbone)."""
        return None

    def lora_target_modules(self, model) -> list[str] | str:
        """Modules LoRA adapts. The default lets peft pick from the model type, else every linear layer."""
        from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as known

        return known.get(getattr(model.config, "model_type", ""), "all-linear")

    def head_modules(self, model) -> list[str]:
        """Names of the freshly initialised head modules, trained and saved in full under LoRA."""
        return []

    def preprocess(self, processor, dataset, split: str, data: TaskData):
        """Model-ready rows of one raw split ("train" augments, "validation" and "test" do not)."""
        raise NotImplementedError

    def lengths(self, dataset) -> list[int] | None:
        """Per-row sizes for --group_by_length; token counts where rows carry input_ids."""
        if "input_ids" not in dataset.column_names:
            return None
        return [len(ids) for ids in dataset["input_ids"]]

    def collate_fn(self, processor) -> Callable:
        raise NotImplementedError

    def compute_loss(self, model, batch: dict, loss: LossSettings):
        """Return (loss, outputs). The default uses the model's own loss."""
        outputs = model(**batch)
        return outputs.loss, outputs

    def teacher_inputs(self, batch: dict) -> dict:
        """What a --teacher_model is called with: the batch without its labels."""
        return {k: v for k, v in batch.items() if k != "labels"}

    def distillation_logits(self, outputs) -> torch.Tensor | None:
        """Logits with classes on dim 1 ([B, C] or per position [B, C, H, W]) for --teacher_model."""
        return getattr(outputs, "logits", None)

    def row_key(self, example: dict) -> str | None:
        """What makes two raw rows the same example, for the data report's duplicate and overlap counts.

        None lets the report use every column but the labels and ids (images by file content).
        """
        return None

    def postprocess(self, batch: dict, outputs):
        """Return (predictions, references) for one eval batch, before gathering.

        Tensors are padded across processes and gathered; any other object is gathered as a list.
        """
        raise NotImplementedError

    def eval_step(self, model, batch: dict, loss: LossSettings | None = None):
        """(loss or None, predictions, references) for one eval batch. Generation tasks override this."""
        value, outputs = self.compute_loss(model, batch, loss or LossSettings())
        predictions, references = self.postprocess(batch, outputs)
        return value, predictions, references

    def metric(self, labels: list[str] | None) -> MetricSpec:
        """The evaluate module and main metric; `labels` None means outputs are not classes (regression)."""
        raise NotImplementedError

    def compute_metrics(self, spec: MetricSpec, batches: list[tuple], dataset) -> dict:
        """Metrics from every gathered (predictions, references) batch of one evaluation.

        `dataset` is the raw split, for tasks that map features back to examples (QA).
        """
        for predictions, references in batches:
            spec.module.add_batch(predictions=predictions, references=references)
        return spec.module.compute(**spec.compute_kwargs)

    def eval_report(self, out_dir, batches: list[tuple], dataset, labels: list[str] | None) -> None:
        """Optional figures or files from the final evaluation (misclassified images, overlays, samples)."""

    # "module:NAME" of the task's prediction file format (a shared.serving.predict.Predictions), imported on
    # first use: the task's predictions module imports the task's own
    predictions: str = ""

    @classmethod
    def prediction_format(cls):
        """The task's prediction format, through which predict.py and the demo's examples read inputs; None for a
        task without one. A format keeps no run state (read() returns each run's Inputs), so a new object is
        only for isolation, not correctness."""
        if not cls.predictions:
            return None
        import importlib

        module, _, name = cls.predictions.partition(":")
        return type(getattr(importlib.import_module(module), name))()

    @classmethod
    def demo(cls) -> DemoSpec | None:
        """The Gradio demo of a saved model; needs no config."""
        return None


_REGISTRY: dict[str, type[Task]] = {}


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator adding a Task subclass to the registry under `name`."""

    def wrap(cls: type[Task]) -> type[Task]:
        if name in _REGISTRY:
            raise ValueError(f"task {name!r} is already registered by {_REGISTRY[name].__module__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def list_tasks() -> list[str]:
    return sorted(_REGISTRY)


def get_task(name: str) -> type[Task]:
    """The registered Task class; build it with its config: `get_task(name)(cfg)`."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown task {name!r}; known: {list_tasks()}")
    return _REGISTRY[name]
