"""Semantic segmentation hooks: a class per pixel, with transformers models or UperNet on a packaged timm backbone."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from shared.toolkit.config import ConfigError
from shared.inputs.splits import ensure_validation, limit_samples
from shared.evaluation.scoring import load_metric
from shared.training.losses import classification_loss
from shared.task import DemoSpec, MetricSpec, Task, TaskData, register_task
from shared.inputs.vision import VisionConfig, adaptable_layers, backbone_rates, image_spec, normalize
from tasks.semantic_segmentation.data import (IGNORE, check_and_count, input_size, load_raw, reduce,
                                              uses_sample_data, value_table)
from tasks.semantic_segmentation.models import (build_model, build_processor, head_prefixes, is_mask_classifier,
                                                mask_targets, semantic_logits)
from tasks.semantic_segmentation.report import write_overlays
from tasks.semantic_segmentation.sample_data import default_dataset
from tasks.semantic_segmentation.transforms import eval_transform, orient_like_image, pad_masks, train_transform


@dataclass
class SemanticSegmentationConfig(VisionConfig):
    model_name_or_path: str = field(default="mobilenetv2", metadata={
        "help": "Hub id or local dir of a transformers segmentation model (SegFormer, UperNet, DPT, BEiT...), "
                "or a packaged backbone ('mobilenetv2', 'efficientnet_lite0') under a new UperNet head."})
    train_dir: Optional[str] = field(default=None, metadata={"help": "Folder with images/ and masks/ (same stems)."})
    validation_dir: Optional[str] = field(default=None, metadata={"help": "Folder with images/ and masks/."})
    test_dir: Optional[str] = field(default=None, metadata={"help": "Folder with images/ and masks/, scored at the end."})
    labels_file: Optional[str] = field(default=None, metadata={
        "help": "labels.json ({\"id2label\": {...}, \"ignore_index\": N}); default: in --train_dir or its parent."})
    image_column: str = "image"
    mask_column: str = field(default="label", metadata={"help": "Mask column of a hub dataset."})
    ignore_index: Optional[int] = field(default=255, metadata={"help": "Mask value of unlabelled pixels in a hub "
                                                                        "dataset (local data: labels.json).",
                                                                "range": "[0, 255]"})
    reduce_labels: bool = field(default=False, metadata={
        "help": "Mask value 0 means 'background/other' and is not a class: ignore it and shift ids 1..N down by "
                "one (ADE20k-style data); its name is dropped from id2label."})
    image_height: Optional[int] = field(default=None, metadata={"help": "Model input height (the backbones downsample "
                                                                         "by 32); default: the processor's, or 512 "
                                                                         "for a packaged backbone.", "range": "[32, inf)"})
    image_width: Optional[int] = field(default=None, metadata={"help": "Model input width, given with --image_height.",
                                                               "range": "[32, inf)"})
    scale_min: float = field(default=0.5, metadata={"help": "Random rescale range of training images (then a "
                                                            "random crop of the input size); 1 and 1 = no rescale.",
                                                    "range": "(0, inf)"})
    scale_max: float = field(default=2.0, metadata={"help": "Upper end of the rescale range (>= --scale_min).",
                                                    "range": "(0, inf)"})
    head_hidden_size: int = field(default=128, metadata={"help": "UperNet channels on a packaged backbone.",
                                                         "range": "[1, inf)"})
    backbone_lr_scale: float = 1.0  # one rate by default: the README's results were measured so
    metric_for_best_model: str = "mean_iou"
    learning_rate: float = 3e-4
    lr_scheduler_type: str = "polynomial"
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 4
    num_train_epochs: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.scale_min <= self.scale_max:
            raise ConfigError(f"--scale_min/--scale_max must satisfy 0 < min <= max, got {self.scale_min}, {self.scale_max}")
        if (self.image_height is None) != (self.image_width is None):
            raise ConfigError("give --image_height and --image_width together")
        if (self.validation_dir or self.test_dir) and not self.train_dir:
            raise ConfigError("--validation_dir and --test_dir go with --train_dir")


@dataclass
class SegmentationData(TaskData):
    """The splits, with labels (class names), label_counts (training pixels per class) and label_ids None."""

    table: torch.Tensor | None = None  # raw mask value (0-255) -> training id, IGNORE for ignored values (int64)


@register_task("semantic_segmentation")
class SemanticSegmentation(Task):
    config_class = SemanticSegmentationConfig
    pipeline_tag = "image-segmentation"
    predictions = "tasks.semantic_segmentation.predictions:PREDICTIONS"
    reference_pad_value = IGNORE  # masks of other sizes on another process: the padding is never scored

    def __init__(self, cfg):
        super().__init__(cfg)
        # no data source given: the embedded sample scenes, and their default input size (load_data and
        # build_processor both follow this one decision)
        self.sample_data = uses_sample_data(cfg)

    # ------------------------------------------------------------------ data
    def load_data(self) -> SegmentationData:
        cfg = self.cfg
        data, labels, sources = load_raw(cfg, default_dataset)
        table = value_table(labels, cfg.reduce_labels)
        names = reduce(labels).names if cfg.reduce_labels else labels.names
        data = limit_samples(ensure_validation(data, cfg), cfg)
        pixel_counts = check_and_count(data, table, len(names), cfg.verify_images)
        # label_counts are pixels, not images: thin classes are rare by area
        return SegmentationData(data, labels=list(names), label_ids=None, label_counts=[int(c) for c in pixel_counts],
                                sources=sources, table=torch.from_numpy(table.astype(np.int64)))

    # ------------------------------------------------------------------ model
    def build_processor(self, data):
        # a reloaded model (data None) keeps its saved processor's size unless --image_height/--image_width say
        return build_processor(self.cfg.model_name_or_path, input_size(self.cfg, self.sample_data and data is not None))

    def build_model(self, labels, processor=None):
        cfg = self.cfg
        model = build_model(cfg, labels, IGNORE)
        if is_mask_classifier(model) and cfg.class_weights:
            raise ConfigError("--class_weights: Mask2Former and MaskFormer train with their own matching loss, "
                              "which takes no class weights; drop the flag")
        if cfg.channels_last:  # before the optimizer exists, so its state takes the same layout
            model = model.to(memory_format=torch.channels_last)
        return model

    def head_modules(self, model) -> list[str]:
        """The decode (and auxiliary) heads: new, so LoRA trains them in full and adapts only the encoder."""
        return [prefix.rstrip(".") for prefix in head_prefixes(model)]

    def lora_target_modules(self, model) -> list[str]:
        return adaptable_layers(model, exclude=self.head_modules(model))

    def lr_overrides(self, model) -> dict[str, float] | None:
        return backbone_rates(self.cfg, model, lambda: lambda name: name.startswith(head_prefixes(model)))

    # ------------------------------------------------------------------ batches
    def preprocess(self, processor, dataset, split: str, data):
        cfg, spec, table = self.cfg, image_spec(processor), data.table
        transform = train_transform(spec, (cfg.scale_min, cfg.scale_max), cfg.hflip) if split == "train" \
            else eval_transform(processor)

        def apply(batch: dict) -> dict:
            pixels, masks = [], []
            for image, mask in zip(batch["image"], batch["mask"]):
                raw = orient_like_image(image, np.asarray(mask, dtype=np.uint8))
                ids = table[torch.from_numpy(raw.astype(np.int64))].to(torch.uint8)
                image, ids = transform(image, ids)
                pixels.append(image)
                masks.append(ids)
            return {"pixel_values": pixels, "labels": masks}

        # decoded and transformed on the fly: images are never stored a second time
        return dataset.with_transform(apply, columns=["image", "mask"])

    def collate_fn(self, processor):
        spec = image_spec(processor)
        layout = torch.channels_last if self.cfg.channels_last else torch.contiguous_format

        def collate(examples: list[dict]) -> dict:
            pixels = torch.stack([e["pixel_values"] for e in examples])
            if pixels.dtype == torch.uint8:  # training crops: normalised here, once per batch
                pixels = normalize(pixels, spec)
            masks = [e["labels"] for e in examples]
            return {"pixel_values": pixels.contiguous(memory_format=layout), "labels": pad_masks(masks, IGNORE),
                    "mask_sizes": torch.tensor([tuple(m.shape[-2:]) for m in masks])}

        return collate

    def compute_loss(self, model, batch, loss):
        if is_mask_classifier(getattr(model, "module", model)):  # Mask2Former: its own matching loss
            masks, classes = mask_targets(batch["labels"], IGNORE)
            outputs = model(pixel_values=batch["pixel_values"], mask_labels=masks, class_labels=classes)
            return outputs.loss, outputs
        outputs = model(pixel_values=batch["pixel_values"])
        logits = upsample(outputs.logits, batch["labels"], batch["mask_sizes"])
        return classification_loss(logits, batch["labels"], loss, ignore_index=IGNORE), outputs

    def postprocess(self, batch, outputs):
        labels = batch["labels"]
        scores = upsample(semantic_logits(outputs), labels, batch["mask_sizes"])
        return scores.argmax(dim=1).to(torch.int16), labels.to(torch.int16)

    # ------------------------------------------------------------------ metrics and report
    def metric(self, labels) -> MetricSpec:
        main = self.cfg.metric_for_best_model
        return MetricSpec(load_metric("mean_iou"), main,
                          compute_kwargs={"num_labels": len(labels), "ignore_index": IGNORE})

    def compute_metrics(self, spec, batches, dataset) -> dict:
        for predictions, references in batches:
            spec.module.add_batch(predictions=list(predictions), references=list(references))
        return spec.module.compute(**spec.compute_kwargs)

    def eval_report(self, out_dir, batches, dataset, labels) -> None:
        """plots/overlays.png: validation images with their true and predicted masks."""
        write_overlays(out_dir, batches, dataset, labels)

    @classmethod
    def demo(cls) -> DemoSpec:
        from tasks.semantic_segmentation.demo import demo_spec  # gradio is the [demo] extra: imported only here

        return demo_spec()


def upsample(logits: torch.Tensor, labels: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Logits at each mask's own size (models predict at 1/4 or at the input size), bilinear as transformers
    does; masks of several sizes in one batch were padded with IGNORE, and so is the logits' padding."""
    height, width = labels.shape[-2:]
    if bool((sizes == torch.tensor([height, width], device=sizes.device)).all()):
        if tuple(logits.shape[-2:]) == (height, width):
            return logits
        return F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)
    out = logits.new_zeros((*logits.shape[:2], height, width), dtype=torch.float32)
    for index, (h, w) in enumerate(sizes.tolist()):
        out[index, :, :h, :w] = F.interpolate(logits[index:index + 1].float(), size=(h, w), mode="bilinear",
                                              align_corners=False)[0]
    return out
