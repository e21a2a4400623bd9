"""Segmentation models: transformers checkpoints by hub id or folder, or UperNet on a packaged timm backbone."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import (AutoConfig, AutoImageProcessor, AutoModelForSemanticSegmentation,
                          AutoModelForUniversalSegmentation, SegformerImageProcessor, TimmBackboneConfig, UperNetConfig,
                          UperNetForSemanticSegmentation)

from shared.toolkit.config import ConfigError
from shared.toolkit.models import is_packaged, load_timm_backbone_state_dict, packaged_timm_name, resolve_model

PACKAGED_SIZE = 512  # input side for a packaged backbone when --image_height/--image_width are not given
# the pretrained encoder of each transformers segmentation family; every other top-level module is head
BACKBONE_MODULES = ("backbone", "segformer", "dpt", "beit", "data2vec", "mobilevit", "mobilenet_v2")
# mask-classification models: a set of (class, mask) queries, trained with their own matching loss
MASK_CLASSIFIERS = ("mask2former", "maskformer")


def build_processor(model_name_or_path: str, size: tuple[int, int] | None):
    """The image processor saved with the model: resize to the input size and normalise, as in training.

    `size` is (height, width); None keeps a checkpoint's own size (PACKAGED_SIZE for a packaged backbone)."""
    if is_packaged(model_name_or_path):
        pretrained = json.loads((Path(resolve_model(model_name_or_path)) / "config.json").read_text())
        data_cfg = pretrained.get("pretrained_cfg", {})
        height, width = size or (PACKAGED_SIZE, PACKAGED_SIZE)
        # SegformerImageProcessor: resize, rescale, normalise, and post_process_semantic_segmentation for
        # the image-segmentation pipeline; it works for any model that returns per-pixel logits
        return SegformerImageProcessor(size={"height": height, "width": width}, resample=2,
                                       image_mean=list(data_cfg.get("mean", (0.485, 0.456, 0.406))),
                                       image_std=list(data_cfg.get("std", (0.229, 0.224, 0.225))),
                                       do_reduce_labels=False)
    processor = AutoImageProcessor.from_pretrained(resolve_model(model_name_or_path))
    if size:
        processor.size = {"height": size[0], "width": size[1]}
    return processor


def build_model(cfg, labels: list[str], ignore_index: int):
    label_args = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                  "label2id": {name: i for i, name in enumerate(labels)}}
    if is_packaged(cfg.model_name_or_path):
        return packaged_upernet(cfg.model_name_or_path, cfg.head_hidden_size, label_args, ignore_index)
    path = resolve_model(cfg.model_name_or_path)
    model_type = AutoConfig.from_pretrained(path).model_type
    auto = AutoModelForUniversalSegmentation if model_type in MASK_CLASSIFIERS else AutoModelForSemanticSegmentation
    try:
        return auto.from_pretrained(path, ignore_mismatched_sizes=True, **label_args)  # a new head for these labels
    except ValueError as err:
        if "Unrecognized configuration class" not in str(err):
            raise
        raise ConfigError(f"{cfg.model_name_or_path} ({model_type}) is not a semantic segmentation model: use "
                          f"SegFormer, UperNet, DPT, BEiT, MobileViT, Mask2Former, MaskFormer...") from None


def packaged_upernet(short_name: str, hidden_size: int, label_args: dict, ignore_index: int):
    """UperNet (no auxiliary head) on a packaged ImageNet backbone: strides 4-32 feed the pyramid."""
    backbone = TimmBackboneConfig(backbone=packaged_timm_name(short_name), out_indices=[1, 2, 3, 4])
    config = UperNetConfig(backbone_config=backbone, hidden_size=hidden_size, use_auxiliary_head=False,
                           loss_ignore_index=ignore_index, **label_args)
    model = UperNetForSemanticSegmentation(config)
    # transformers never loads timm weights itself offline; the features-only model lacks the classifier
    # and the layers after the last used stage, so those are the only keys left over
    result = model.backbone._backbone.load_state_dict(load_timm_backbone_state_dict(short_name), strict=False)
    if result.missing_keys:
        raise RuntimeError(f"packaged {short_name} weights miss {result.missing_keys[:5]} in the UperNet backbone")
    return model


def is_mask_classifier(model) -> bool:
    return getattr(model.config, "model_type", "") in MASK_CLASSIFIERS


def mask_targets(labels: torch.Tensor, ignore: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per image, one binary mask per class present and the class ids: Mask2Former's training targets.
    Ignored pixels belong to no mask (as in transformers' Mask2FormerImageProcessor)."""
    masks, classes = [], []
    for label_map in labels:
        present = label_map.unique()
        present = present[present != ignore]
        masks.append((label_map[None] == present[:, None, None]).float())
        classes.append(present.long())
    return masks, classes


def semantic_logits(outputs) -> torch.Tensor:
    """Per-class scores [B, C, h, w]: the model's logits, or a mask classifier's queries combined
    (class probabilities without 'no object' times mask probabilities, as its semantic post-processing)."""
    if getattr(outputs, "logits", None) is not None:
        return outputs.logits
    classes = outputs.class_queries_logits.float().softmax(-1)[..., :-1]
    return torch.einsum("bqc,bqhw->bchw", classes, outputs.masks_queries_logits.float().sigmoid())


def head_prefixes(model) -> tuple[str, ...]:
    """Parameter-name prefixes of everything but the pretrained encoder (--backbone_learning_rate, LoRA)."""
    children = [name for name, _ in model.named_children()]
    if not any(name in BACKBONE_MODULES for name in children):
        raise ConfigError(f"cannot tell the backbone of {type(model).__name__} (modules {children}); "
                          "--backbone_learning_rate and --use_peft need one of " + ", ".join(BACKBONE_MODULES))
    return tuple(f"{name}." for name in children if name not in BACKBONE_MODULES)
