"""Segmentation models: transformers checkpoints by hub id or folder, or UperNet on a packaged timm backbone."""
from __future__ import annotations

import json
from pathlib import Path

from transformers import (AutoImageProcessor, AutoModelForSemanticSegmentation, SegformerImageProcessor,
                          TimmBackboneConfig, UperNetConfig, UperNetForSemanticSegmentation)

from shared.config import ConfigError
from shared.models import is_packaged, load_timm_backbone_state_dict, packaged_timm_name, resolve_model

PACKAGED_SIZE = 512  # input side for a packaged backbone when --image_height/--image_width are not given
# the pretrained encoder of each transformers segmentation family; every other top-level module is head
BACKBONE_MODULES = ("backbone", "segformer", "dpt", "beit", "data2vec", "mobilevit", "mobilenet_v2")


def build_processor(cfg):
    """The image processor saved with the model: resize to the input size and normalise, as in training."""
    if is_packaged(cfg.model_name_or_path):
        pretrained = json.loads((Path(resolve_model(cfg.model_name_or_path)) / "config.json").read_text())
        data_cfg = pretrained.get("pretrained_cfg", {})
        height, width = cfg.image_height or PACKAGED_SIZE, cfg.image_width or PACKAGED_SIZE
        # SegformerImageProcessor: resize, rescale, normalise, and post_process_semantic_segmentation for
        # the image-segmentation pipeline; it works for any model that returns per-pixel logits
        return SegformerImageProcessor(size={"height": height, "width": width}, resample=2,
                                       image_mean=list(data_cfg.get("mean", (0.485, 0.456, 0.406))),
                                       image_std=list(data_cfg.get("std", (0.229, 0.224, 0.225))),
                                       do_reduce_labels=False)
    processor = AutoImageProcessor.from_pretrained(resolve_model(cfg.model_name_or_path))
    if cfg.image_height:
        processor.size = {"height": cfg.image_height, "width": cfg.image_width}
    return processor


def build_model(cfg, labels: list[str], ignore_index: int):
    label_args = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                  "label2id": {name: i for i, name in enumerate(labels)}}
    if is_packaged(cfg.model_name_or_path):
        return packaged_upernet(cfg.model_name_or_path, cfg.head_hidden_size, label_args, ignore_index)
    try:
        return AutoModelForSemanticSegmentation.from_pretrained(
            resolve_model(cfg.model_name_or_path), ignore_mismatched_sizes=True, **label_args)  # new head
    except ValueError as err:
        if "Unrecognized configuration class" not in str(err):
            raise
        raise ConfigError(f"{cfg.model_name_or_path} is not a semantic segmentation model "
                          f"(AutoModelForSemanticSegmentation: SegFormer, UperNet, DPT, BEiT, MobileViT...)") from None


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


def head_prefixes(model) -> tuple[str, ...]:
    """Parameter-name prefixes of everything but the pretrained encoder (for --backbone_learning_rate)."""
    children = [name for name, _ in model.named_children()]
    if not any(name in BACKBONE_MODULES for name in children):
        raise ConfigError(f"cannot tell the backbone of {type(model).__name__} (modules {children}); "
                          "--backbone_learning_rate needs one of " + ", ".join(BACKBONE_MODULES))
    return tuple(f"{name}." for name in children if name not in BACKBONE_MODULES)
