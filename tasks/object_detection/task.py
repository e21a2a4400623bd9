"""Object detection hooks: COCO JSON folders or cppe-5-style hub data; a dense head or DETR-family detectors."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import Literal, Optional

import datasets
import numpy as np
import torch

from shared.toolkit.config import ConfigError
from shared.inputs.splits import ensure_validation, limit_samples
from shared.evaluation.scoring import load_metric
from shared.toolkit.models import is_packaged, resolve_model
from shared.evaluation.plots import plot_image_grid, plot_pr_curves
from shared.task import DemoSpec, MetricSpec, Task, TaskData, register_task
from shared.inputs.vision import (VisionConfig, adaptable_layers, backbone_rates, freeze_batchnorm, image_spec, modules_outside,
                           normalize, to_rgb)
from tasks.object_detection.data import (BoxAugment, BoxCounts, check_hub_split, hub_label_names,
                                         load_coco_folders, normalised_centres)
from tasks.object_detection.drawing import draw_detections
from tasks.object_detection.models import build_detector, build_processor
from tasks.object_detection.sample_data import default_dataset

REPORTED_IMAGES = 8  # validation images drawn with their predictions in plots/predictions.png
DRAW_THRESHOLD = 0.3  # score above which a prediction is drawn in the report


@dataclass
class ObjectDetectionConfig(VisionConfig):
    model_name_or_path: str = field(default="mobilenetv2", metadata={
        "help": "Packaged backbone ('mobilenetv2', 'efficientnet_lite0') given a new --architecture head, or a hub "
                "id / saved folder of a detector (facebook/detr-resnet-50, PekingU/rtdetr_r18vd, a run's best/)."})
    architecture: Literal["dense", "conditional_detr", "rt_detr"] = field(default="dense", metadata={
        "help": "Head put on a packaged backbone: dense (one prediction per location, converges in a few epochs), "
                "conditional_detr or rt_detr. Ignored for hub ids and folders."})
    train_dir: Optional[str] = field(default=None, metadata={"help": "Folder of images + _annotations.coco.json."})
    validation_dir: Optional[str] = field(default=None, metadata={"help": "Folder of images + _annotations.coco.json."})
    test_dir: Optional[str] = field(default=None, metadata={"help": "Folder of images + _annotations.coco.json, scored at the end."})
    image_size: Optional[int] = field(default=None, metadata={
        "help": "Square input side (the backbones downsample by 32). Default: 384 on a packaged backbone, else the "
                "processor's own size.", "range": "[32, inf)"})
    crop_probability: float = field(default=0.5, metadata={"help": "Chance of an SSD-style random IoU crop per image.",
                                                           "range": "[0, 1]"})
    colour_jitter: bool = field(default=True, metadata={"help": "Random photometric distortion (brightness, contrast, "
                                                                 "saturation, hue)."})
    min_box_pixels: float = field(default=2.0, metadata={"help": "Boxes an augmentation leaves smaller than this are "
                                                                 "dropped (and counted).", "range": "[0, inf)"})
    freeze_backbone_batchnorm: bool = field(default=True, metadata={
        "help": "Keep the backbone's BatchNorm statistics (small detection batches estimate them badly)."})
    metric_for_best_model: Optional[str] = field(default=None, metadata={"help": "Default: map (COCO mAP@0.5:0.95)."})
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    lr_scheduler_type: Literal["constant", "linear", "cosine", "exponential", "polynomial", "reduce_on_plateau"] = "cosine"
    warmup_ratio: float = 0.05
    num_train_epochs: float = 20.0
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    max_grad_norm: float = 10.0  # GIoU and focal losses spike early; 1.0 slowed the dense head measurably

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.train_file or self.validation_file or self.test_file:
            raise ConfigError("object detection reads COCO folders: use --train_dir / --validation_dir "
                              "(images + _annotations.coco.json), or --dataset_name")


@dataclass
class DetectionData(TaskData):
    """TaskData plus the training augmentation's box counts (kept and dropped), filled while training reads images."""

    box_counts: BoxCounts = field(default_factory=BoxCounts)

    def notes(self) -> list[str]:
        """Lines for the end of a run: how many training boxes the augmentation dropped."""
        counts = self.box_counts
        if not counts.seen:
            return []
        return [f"augmentation dropped {counts.dropped} of {counts.seen} training boxes "
                f"(cut by crops to under {counts.min_box_pixels} px)"]


def _processor(cfg):
    """The config's image processor (a packaged backbone's is built, any other is loaded)."""
    return build_processor(resolve_model(cfg.model_name_or_path) if not is_packaged(
        cfg.model_name_or_path) else cfg.model_name_or_path, cfg.architecture, cfg.image_size)


class BoxDecoder:
    """The image processor's own box decoding (post_process_object_detection) for one config.

    The processor is the one build_processor returns, made from the config alone on first use: postprocess
    also runs where no processor is handed over (eval_step in export and predict, the Trainer baseline).
    """

    def __init__(self, cfg):
        self.cfg = cfg

    @cached_property
    def processor(self):
        return _processor(self.cfg)

    def __call__(self, outputs, sizes: torch.Tensor) -> list[dict]:
        return self.processor.post_process_object_detection(
            SimpleNamespace(logits=outputs.logits.float().cpu(), pred_boxes=outputs.pred_boxes.float().cpu()),
            threshold=0.0, target_sizes=sizes)


@register_task("object_detection")
class ObjectDetection(Task):
    config_class = ObjectDetectionConfig
    pipeline_tag = "object-detection"
    predictions = "tasks.object_detection.predictions:PREDICTIONS"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.decoder = BoxDecoder(cfg)  # cfg-only; loads the processor when postprocess first needs it

    # ------------------------------------------------------------------ data
    def load_data(self) -> DetectionData:
        cfg = self.cfg
        if cfg.dataset_name and cfg.train_dir:
            raise ConfigError("give one data source: --dataset_name or --train_dir")
        sources = {}
        if cfg.dataset_name:
            raw = datasets.load_dataset(cfg.dataset_name, cfg.dataset_config_name)
            names = hub_label_names(raw["train"], f"{cfg.dataset_name}[train]")
            data = datasets.DatasetDict({split: check_hub_split(ds, f"{cfg.dataset_name}[{split}]", len(names))
                                         for split, ds in raw.items()})
        else:
            if not cfg.train_dir:  # the embedded default: generated shapes, named by a copy of the config
                folder = default_dataset()
                cfg = dataclasses.replace(cfg, train_dir=str(folder / "train"), validation_dir=str(folder / "validation"))
            if cfg.validation_dir is None and not Path(cfg.train_dir).is_dir():
                raise ConfigError(f"--train_dir {cfg.train_dir}: no such folder")
            data, names = load_coco_folders(cfg.train_dir, cfg.validation_dir, cfg.verify_images, cfg.test_dir,
                                            cfg.allow_paths_outside_data)
            given = {"train": cfg.train_dir, "validation": cfg.validation_dir, "test": cfg.test_dir}
            sources = {split: str(path) for split, path in given.items() if path}
        data = limit_samples(ensure_validation(data, cfg), cfg)
        return DetectionData(data, labels=names, label_ids=None, sources=sources,
                             box_counts=BoxCounts(min_box_pixels=cfg.min_box_pixels))

    # ------------------------------------------------------------------ model
    def build_processor(self, data):
        return _processor(self.cfg)

    def build_model(self, labels, processor=None):
        cfg = self.cfg
        reference = cfg.model_name_or_path if is_packaged(cfg.model_name_or_path) else resolve_model(cfg.model_name_or_path)
        model = build_detector(reference, cfg.architecture, labels, cfg.image_size)
        if cfg.freeze_backbone_batchnorm and self._backbone(model) is not None:
            freeze_batchnorm(self._backbone(model))
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    @staticmethod
    def _backbone(model) -> torch.nn.Module | None:
        """The dense head's timm backbone, or a DETR-family `model.backbone`; None for models without one (YOLOS)."""
        found = getattr(model, "backbone", None)
        return found if found is not None else getattr(getattr(model, "model", None), "backbone", None)

    def head_modules(self, model) -> list[str]:
        """Everything outside the pretrained backbone (neck, heads, a DETR transformer) trains in full under LoRA."""
        backbone = self._backbone(model)
        if backbone is None:
            raise ConfigError(f"--use_peft: cannot find the backbone of {type(model).__name__} (looked for "
                              "model.backbone and model.model.backbone); train it without --use_peft")
        return modules_outside(model, backbone)

    def lora_target_modules(self, model) -> list[str]:
        return adaptable_layers(model, exclude=self.head_modules(model))

    def lr_overrides(self, model) -> dict[str, float] | None:
        cfg = self.cfg
        base = getattr(model, "get_base_model", lambda: model)()
        backbone = self._backbone(base)
        if backbone is None:  # one rate for everything
            return None
        ids = {id(p) for p in backbone.parameters()}
        in_backbone = {name for name, p in model.named_parameters() if id(p) in ids}
        return backbone_rates(cfg, model, lambda: lambda name: name not in in_backbone)

    # ------------------------------------------------------------------ batches
    def preprocess(self, processor, dataset, split: str, data):
        cfg = self.cfg
        if split == "train":  # boxes it keeps and drops are counted in the run's TaskData
            augment = BoxAugment(processor, cfg.hflip, cfg.crop_probability, cfg.colour_jitter, cfg.min_box_pixels,
                                 counts=getattr(data, "box_counts", None))

        def example(image, objects, image_id) -> tuple[torch.Tensor, dict]:
            image = to_rgb(image)
            size = torch.tensor([image.height, image.width])
            if split == "train":
                pixels, boxes, classes = augment(image, objects["bbox"], objects["category"])
            else:  # the processor itself, so validation sees exactly what the saved pipeline will
                pixels = processor(images=[image], return_tensors="pt")["pixel_values"][0]
                boxes = normalised_centres(objects["bbox"], (image.height, image.width))
                classes = torch.tensor(objects["category"], dtype=torch.long)
            return pixels, {"class_labels": classes, "boxes": boxes, "orig_size": size, "image_id": torch.tensor(image_id)}

        def apply(batch: dict) -> dict:
            pairs = [example(*row) for row in zip(batch["image"], batch["objects"], batch["image_id"])]
            return {"pixel_values": [p for p, _ in pairs], "labels": [t for _, t in pairs]}

        return dataset.with_transform(apply, columns=["image", "objects", "image_id"])

    def collate_fn(self, processor):
        spec = image_spec(processor)
        layout = torch.channels_last if self.cfg.channels_last else torch.contiguous_format

        def collate(examples: list[dict]) -> dict:
            images = [e["pixel_values"] for e in examples]
            height, width = max(i.shape[-2] for i in images), max(i.shape[-1] for i in images)
            pixels = torch.zeros(len(images), 3, height, width)
            mask = torch.zeros(len(images), height, width, dtype=torch.long)  # 1 = real pixel, 0 = padding
            if all(i.dtype == torch.uint8 and i.shape == images[0].shape for i in images):
                images = list(normalize(torch.stack(images), spec))  # training images: normalised once per batch
            for k, image in enumerate(images):
                image = normalize(image[None], spec)[0] if image.dtype == torch.uint8 else image
                pixels[k, :, :image.shape[-2], :image.shape[-1]] = image
                mask[k, :image.shape[-2], :image.shape[-1]] = 1
            return {"pixel_values": pixels.contiguous(memory_format=layout), "pixel_mask": mask,
                    "labels": [e["labels"] for e in examples]}

        return collate

    def postprocess(self, batch, outputs):
        """Boxes in pixels of the original images, as x1, y1, x2, y2, through the processor's own decoding."""
        labels = batch["labels"]
        sizes = torch.stack([t["orig_size"] for t in labels]).cpu()
        decoded = self.decoder(outputs, sizes)
        predictions = [{key: d[key].numpy() for key in ("boxes", "scores", "labels")} for d in decoded]
        references = []
        for target, (height, width) in zip(labels, sizes.tolist()):
            centres = target["boxes"].float().cpu() * torch.tensor([width, height, width, height])
            corners = torch.cat([centres[:, :2] - centres[:, 2:] / 2, centres[:, :2] + centres[:, 2:] / 2], dim=-1)
            references.append({"boxes": corners.numpy(), "labels": target["class_labels"].cpu().numpy()})
        return predictions, references

    # ------------------------------------------------------------------ metrics and report
    def metric(self, labels) -> MetricSpec:
        cfg = self.cfg
        return MetricSpec(load_metric("detection"), cfg.metric_for_best_model or "map",
                          compute_kwargs={"num_labels": len(labels), "box_format": "xyxy"})

    def eval_report(self, out_dir, batches, dataset, labels) -> None:
        """plots/predictions.png (boxes on validation images) and plots/precision_recall.png (IoU 0.5)."""
        predictions = [p for batch, _ in batches for p in batch]
        references = [r for _, batch in batches for r in batch]
        images = []
        for index in range(min(REPORTED_IMAGES, len(predictions))):
            image = to_rgb(dataset[index]["image"])
            images.append(draw_detections(image, predictions[index], labels, DRAW_THRESHOLD, references[index]))
        if images:
            plot_image_grid(images, [f"validation {i}" for i in range(len(images))], Path(out_dir) / "predictions.png")
        results = load_metric("detection").compute(predictions=predictions, references=references,
                                                   num_labels=len(labels), box_format="xyxy")
        curves = {name: curve for name, curve in zip(labels, results["pr_curve_50"]) if curve is not None}
        if curves:
            plot_pr_curves(curves, list(np.linspace(0, 1, 101)), Path(out_dir) / "precision_recall.png",
                           "Precision-recall at IoU 0.5")

    @classmethod
    def demo(cls) -> DemoSpec:
        from tasks.object_detection.demo import demo_spec

        return demo_spec()
