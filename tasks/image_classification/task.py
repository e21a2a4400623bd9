"""Image classification hooks: timm or transformers backbones, single- or multi-label, mixup, LoRA."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from datasets import DatasetDict
from transformers import AutoImageProcessor, AutoModelForImageClassification

from shared.toolkit.config import ConfigError
from shared.inputs.splits import ensure_validation, limit_samples
from shared.evaluation.scoring import load_metric
from shared.training.losses import classification_loss
from shared.toolkit.models import resolve_model
from shared.evaluation.plots import plot_image_grid
from shared.task import DemoSpec, MetricSpec, Task, TaskData, register_task
from shared.inputs.vision import (VisionConfig, adaptable_layers, backbone_rates, eval_transform, freeze_batchnorm,
                           image_spec, mix_batch, normalize, to_rgb, train_transform)
from tasks.image_classification.data import check_images, encode_labels, load_raw
from tasks.image_classification.sample_data import default_dataset

MULTI = "multi_label_classification"
HEAD_NAMES = ("classifier", "classifier_distill", "distillation_classifier", "head", "score")
MAX_REPORTED_ERRORS = 16  # images in the misclassified grid


@dataclass
class ImageClassificationConfig(VisionConfig):
    model_name_or_path: str = field(default="mobilenetv2", metadata={
        "help": "Hub id (ViT, ConvNeXt, timm/<name> ...), local dir, or packaged 'mobilenetv2' / 'efficientnet_lite0'."})
    train_dir: Optional[str] = field(default=None, metadata={"help": "Image folder <train_dir>/<class>/*.jpg."})
    validation_dir: Optional[str] = field(default=None, metadata={"help": "Image folder <validation_dir>/<class>/*.jpg."})
    test_dir: Optional[str] = field(default=None, metadata={"help": "Image folder <test_dir>/<class>/*.jpg, scored at the end."})
    image_column: str = field(default="image", metadata={"help": "Image paths (CSV/JSONL, relative to the file) or hub images."})
    label_column: str = "label"
    problem_type: Literal["single_label_classification", "multi_label_classification"] = "single_label_classification"
    label_separator: str = field(default=",", metadata={"help": "Joins several labels in one cell (multi-label)."})
    threshold: str = field(default="0.5", metadata={"help": "Multi-label decision threshold: one value or one per label."})
    augment: Literal["none", "randaugment", "trivialaugment"] = "none"
    crop_scale_min: float = field(default=0.08, metadata={
        "help": "Smallest area fraction kept by the random resized crop.", "range": "(0, 1]"})
    mixup_alpha: float = field(default=0.0, metadata={"help": "MixUp Beta(alpha, alpha); 0 = off.", "range": "[0, inf)"})
    cutmix_alpha: float = field(default=0.0, metadata={"help": "CutMix Beta(alpha, alpha); 0 = off.", "range": "[0, inf)"})
    freeze_backbone: bool = field(default=False, metadata={"help": "Train only the new head (BatchNorm statistics frozen)."})
    metric_for_best_model: Optional[str] = field(default=None, metadata={"help": "Default: accuracy (multi-label: f1_micro)."})
    learning_rate: float = 1e-3  # the new head's rate; the backbone's defaults to a tenth of it
    warmup_ratio: float = 0.1
    num_train_epochs: float = 5.0  # small fine-tuning sets: 3 epochs left the embedded shapes at 0.85, 5 reach 0.95

    def __post_init__(self) -> None:
        super().__post_init__()
        multi = self.problem_type == MULTI
        if self.freeze_backbone and self.use_peft:
            raise ConfigError("--freeze_backbone and --use_peft both choose what trains; give one")
        if multi and (self.class_weights or self.label_smoothing or self.loss == "focal" or self.weighted_sampler):
            raise ConfigError("--class_weights, --label_smoothing, --loss focal and --weighted_sampler apply to "
                              "single-label data only")
        if self.teacher_model and (self.mixup_alpha or self.cutmix_alpha):
            raise ConfigError("--teacher_model with --mixup_alpha/--cutmix_alpha: the teacher would see unmixed "
                              "images; give one or the other")
        if multi and self.train_dir:
            raise ConfigError("an image folder has one class per image; multi-label data needs --train_file or --dataset_name")
        try:
            self.thresholds
        except ValueError:
            raise ConfigError(f"--threshold {self.threshold!r}: expected a number or comma-separated numbers") from None

    @property
    def thresholds(self) -> list[float]:
        """--threshold as numbers: one for every label, or one per label (checked against the labels by load_data)."""
        return [float(t) for t in self.threshold.split(",")]


@register_task("image_classification")
class ImageClassification(Task):
    config_class = ImageClassificationConfig
    pipeline_tag = "image-classification"
    predictions = "tasks.image_classification.predictions:PREDICTIONS"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.multi_label = cfg.problem_type == MULTI  # multi-hot float targets, sigmoid scores, BCE
        self.mixing = (cfg.mixup_alpha, cfg.cutmix_alpha)  # MixUp / CutMix Beta alphas (training only)

    # ------------------------------------------------------------------ data
    def load_data(self) -> TaskData:
        """Checked image/label splits. Labels: the single-label ClassLabel names (per-row ids and counts for
        --weighted_sampler and --class_weights), or the names inside a multi-label list (no per-row class)."""
        cfg, data, describe, sources = load_raw(self.cfg, default_dataset)  # cfg: a copy naming the embedded sample
        data = encode_labels(data, cfg, describe)
        if cfg.verify_images:
            check_images(data, describe)
        data = ensure_validation(data, cfg, stratify_column="label")
        if cfg.max_train_samples or cfg.max_eval_samples:  # folders list images class by class: shuffle first,
            data = DatasetDict({k: v.shuffle(seed=cfg.seed) for k, v in data.items()})  # or N may be one class
        data = limit_samples(data, cfg)
        if not self.multi_label:
            return TaskData.from_splits(data, sources=sources)
        names = list(data["train"].features["label"].feature.names)
        if len(cfg.thresholds) not in (1, len(names)):
            raise ConfigError(f"--threshold has {len(cfg.thresholds)} values for {len(names)} labels {names}")
        return TaskData.from_splits(data, labels=names, sources=sources)  # label_ids, label_counts: None

    # ------------------------------------------------------------------ model
    def build_processor(self, data):
        return AutoImageProcessor.from_pretrained(resolve_model(self.cfg.model_name_or_path))

    def build_model(self, labels, processor=None):
        cfg = self.cfg
        model = AutoModelForImageClassification.from_pretrained(
            resolve_model(cfg.model_name_or_path), num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)}, problem_type=cfg.problem_type,
            ignore_mismatched_sizes=True)  # a new head sized for these labels
        if getattr(model.config, "label_names", None) is not None:
            # TimmWrapperConfig saves `label_names` instead of id2label and keeps the checkpoint's old
            # (ImageNet) list unless replaced; the pipeline would then answer LABEL_0, LABEL_1, ...
            model.config.label_names = list(labels)
        if cfg.channels_last:  # before the optimizer exists, so its state takes the same layout
            model = model.to(memory_format=torch.channels_last)
        if cfg.freeze_backbone:
            heads = self.head_modules(model)
            for name, param in model.named_parameters():
                param.requires_grad = any(name.startswith(head + ".") for head in heads)
            frozen = freeze_batchnorm(model)
            print(f"frozen backbone: training only {heads}; {frozen} BatchNorm layers keep their statistics")
        return model

    def head_modules(self, model) -> list[str]:
        """Names of the classification head: timm's own classifier, else the usual transformers names."""
        timm_model = getattr(model, "timm_model", None)
        if timm_model is not None:
            head = timm_model.get_classifier()
            return [name for name, module in model.named_modules() if module is head][:1]
        heads = [name for name, _ in model.named_children() if name in HEAD_NAMES]
        if not heads:
            raise ConfigError(f"cannot find the classification head of {type(model).__name__} (looked for "
                              f"{HEAD_NAMES}); --freeze_backbone, --backbone_learning_rate and LoRA need it")
        return heads

    def lr_overrides(self, model) -> dict[str, float] | None:
        cfg = self.cfg
        base = getattr(model, "get_base_model", lambda: model)()  # head names inside a peft wrapper too

        def head_test():
            try:
                heads = self.head_modules(base)
            except ConfigError:
                if cfg.backbone_learning_rate is not None:
                    raise
                return None  # an unfamiliar architecture: one rate, rather than failing a default
            return lambda name: any(f".{head}." in f".{name}" for head in heads)

        return backbone_rates(cfg, model, head_test, frozen=cfg.freeze_backbone)

    def lora_target_modules(self, model) -> list[str]:
        return adaptable_layers(model, exclude=self.head_modules(model))

    # ------------------------------------------------------------------ batches
    def preprocess(self, processor, dataset, split: str, data):
        cfg = self.cfg
        transform = (train_transform(image_spec(processor), cfg.augment, cfg.hflip, (cfg.crop_scale_min, 1.0))
                     if split == "train" else eval_transform(processor))
        width = len(data.labels)

        def apply(batch: dict) -> dict:
            labels = batch["label"]
            if self.multi_label:  # multi-hot float targets
                labels = [[float(i in ids) for i in range(width)] for ids in labels]
            return {"pixel_values": [transform(to_rgb(image)) for image in batch["image"]], "labels": labels}

        # decoded and transformed on the fly: images are never stored a second time
        return dataset.with_transform(apply, columns=["image", "label"])

    def collate_fn(self, processor):
        dtype, spec = (torch.float32 if self.multi_label else torch.long), image_spec(processor)
        layout = torch.channels_last if self.cfg.channels_last else torch.contiguous_format

        def collate(examples: list[dict]) -> dict:
            pixels = torch.stack([e["pixel_values"] for e in examples])
            if pixels.dtype == torch.uint8:  # training crops: normalised here, once per batch
                pixels = normalize(pixels, spec)
            pixels = pixels.contiguous(memory_format=layout)
            return {"pixel_values": pixels, "labels": torch.tensor([e["labels"] for e in examples], dtype=dtype)}

        return collate

    def compute_loss(self, model, batch, loss):
        pixels, labels = batch["pixel_values"], batch["labels"]
        if model.training and any(self.mixing):
            targets = labels if self.multi_label else F.one_hot(labels, _num_labels(model)).float()
            pixels, labels = mix_batch(pixels, targets, *self.mixing)
        outputs = model(pixel_values=pixels)
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(outputs.logits.float(), labels.float()), outputs
        if model.training or not loss.label_smoothing:
            return classification_loss(outputs.logits, labels, loss), outputs
        # eval loss without smoothing, so it stays comparable across runs; counted on the run's own settings
        value = classification_loss(outputs.logits, labels, dataclasses.replace(loss, label_smoothing=0.0))
        loss.applied += 1
        return value, outputs

    def postprocess(self, batch, outputs):
        logits = outputs.logits.float()
        if self.multi_label:
            return logits.sigmoid(), batch["labels"].long()
        return logits.softmax(-1), batch["labels"]

    # ------------------------------------------------------------------ metrics and report
    def metric(self, labels) -> MetricSpec:
        cfg = self.cfg
        if self.multi_label:
            threshold = cfg.thresholds[0] if len(cfg.thresholds) == 1 else cfg.thresholds
            return MetricSpec(load_metric("multilabel"), cfg.metric_for_best_model or "f1_micro",
                              compute_kwargs={"threshold": threshold})
        main = cfg.metric_for_best_model or "accuracy"
        return MetricSpec(load_metric("classification"), main,
                          compute_kwargs={"num_labels": len(labels), "top_k": 5})

    def eval_report(self, out_dir, batches, dataset, labels) -> None:
        """plots/misclassified.png: up to 16 validation images the final model gets wrong."""
        probs = np.concatenate([np.asarray(p) for p, _ in batches])
        refs = np.concatenate([np.asarray(r) for _, r in batches])
        if self.multi_label:
            predicted = probs >= np.asarray(self.cfg.thresholds)
            wrong = np.flatnonzero((predicted != refs.astype(bool)).any(axis=1))
            name = lambda row: "+".join(labels[i] for i in np.flatnonzero(row)) or "-"
            titles = [f"true {name(refs[i])}\npred {name(predicted[i])}" for i in wrong]
        else:
            predicted = probs.argmax(axis=1)
            wrong = np.flatnonzero(predicted != refs)
            titles = [f"true {labels[refs[i]]}\npred {labels[predicted[i]]} ({probs[i, predicted[i]]:.2f})" for i in wrong]
        if len(wrong) == 0:
            return
        images = []
        for index in wrong[:MAX_REPORTED_ERRORS]:
            image = to_rgb(dataset[int(index)]["image"])
            image.thumbnail((192, 192))
            images.append(image)
        plot_image_grid(images, titles[:MAX_REPORTED_ERRORS], Path(out_dir) / "misclassified.png")

    # ------------------------------------------------------------------ demo
    @classmethod
    def demo(cls) -> DemoSpec:
        from tasks.image_classification.demo import demo_spec  # gradio is the [demo] extra: imported only here

        return demo_spec()


def _num_labels(model) -> int:
    """The head's width, from the model's config (through a DistributedDataParallel wrapper's .module)."""
    return getattr(model, "module", model).config.num_labels
