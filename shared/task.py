"""The Task contract (the hooks a task supplies) and the task registry."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch


@dataclass
class MetricSpec:
    """An evaluate module, the kwargs for its compute(), and which key decides 'best'."""

    module: Any
    main: str
    greater_is_better: bool = True
    compute_kwargs: dict = field(default_factory=dict)


@dataclass
class DemoSpec:
    """What a Gradio demo needs: components, examples and a predict(pipe, *inputs) function.

    shared/demo.py checks every gr.Textbox and gr.Image input before `predict` sees it: empty text is
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


class Task:
    """Base class of every task. Subclasses override the hooks; the engine owns the rest.

    Hooks take plain data and return plain data: no accelerate, no devices.
    """

    name: str = ""
    config_class: type = object
    pipeline_tag: str = ""
    # fills references where processes' eval batches differ in size before gathering: a value the metric ignores
    reference_pad_value: int = 0

    def load_data(self, cfg):  # -> datasets.DatasetDict with "train" and "validation"
        raise NotImplementedError

    def label_names(self, cfg, data) -> list[str] | None:
        """Label names read from the train split's ClassLabel feature, if there is one."""
        feature = data["train"].features.get("label")
        return list(feature.names) if hasattr(feature, "names") else None

    def label_ids(self, cfg, data) -> list[int] | None:
        """Integer training labels, for --class_weights balanced; None where labels are not classes."""
        feature = data["train"].features.get("label")
        return list(data["train"]["label"]) if hasattr(feature, "names") else None

    def label_counts(self, cfg, data) -> list[int] | None:
        """Training count of each label id, for --class_weights balanced. Dense tasks count pixels here."""
        from shared.losses import label_counts

        labels = self.label_names(cfg, data)
        return label_counts(self.label_ids(cfg, data), len(labels)) if labels else None

    def lr_overrides(self, cfg, model) -> dict[str, float] | None:
        """Parameter-name prefix -> learning rate, for discriminative rates (for example the backbone)."""
        return None

    def lora_target_modules(self, model) -> list[str] | str:
        """Modules LoRA adapts. The default lets peft pick from the model type, else every linear layer."""
        from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as known

        return known.get(getattr(model.config, "model_type", ""), "all-linear")

    def head_modules(self, model) -> list[str]:
        """Names of the freshly initialised head modules, trained and saved in full under LoRA."""
        return []

    def build_processor(self, cfg):
        raise NotImplementedError

    def build_model(self, cfg, labels: list[str] | None):
        raise NotImplementedError

    def preprocess(self, cfg, processor, dataset, split: str):
        raise NotImplementedError

    def lengths(self, dataset) -> list[int] | None:
        """Per-row sizes for --group_by_length; token counts where rows carry input_ids."""
        if "input_ids" not in dataset.column_names:
            return None
        return [len(ids) for ids in dataset["input_ids"]]

    def collate_fn(self, cfg, processor) -> Callable:
        raise NotImplementedError

    def compute_loss(self, model, batch: dict, class_weights: torch.Tensor | None):
        """Return (loss, outputs). The default uses the model's own loss."""
        outputs = model(**batch)
        return outputs.loss, outputs

    def teacher_inputs(self, batch: dict) -> dict:
        """What a --teacher_model is called with: the batch without its labels."""
        return {k: v for k, v in batch.items() if k != "labels"}

    def distillation_logits(self, outputs) -> torch.Tensor | None:
        """Logits with classes on dim 1 ([B, C] or per position [B, C, H, W]) for --teacher_model."""
        return getattr(outputs, "logits", None)

    def data_warnings(self, cfg, data) -> list[str]:
        """Task findings for the data report's warnings (for example tags repaired while reading)."""
        return []

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

    def eval_step(self, model, batch: dict, class_weights: torch.Tensor | None = None):
        """(loss or None, predictions, references) for one eval batch. Generation tasks override this."""
        loss, outputs = self.compute_loss(model, batch, class_weights)
        predictions, references = self.postprocess(batch, outputs)
        return loss, predictions, references

    def metric(self, cfg) -> MetricSpec:
        raise NotImplementedError

    def compute_metrics(self, cfg, spec: MetricSpec, batches: list[tuple], dataset) -> dict:
        """Metrics from every gathered (predictions, references) batch of one evaluation.

        `dataset` is the raw validation split, for tasks that map features back to examples (QA).
        """
        for predictions, references in batches:
            spec.module.add_batch(predictions=predictions, references=references)
        return spec.module.compute(**spec.compute_kwargs)

    def eval_report(self, cfg, out_dir, batches: list[tuple], dataset, labels: list[str] | None) -> None:
        """Optional figures or files from the final evaluation (misclassified images, overlays, samples)."""

    def demo(self) -> DemoSpec | None:
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


def get_task(name: str) -> Task:
    if name not in _REGISTRY:
        raise KeyError(f"unknown task {name!r}; known: {list_tasks()}")
    return _REGISTRY[name]()
