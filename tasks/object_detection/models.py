"""Detectors: the dense head on a packaged timm backbone (offline default), DETR-family heads on it, or any hub/dir detector."""
from __future__ import annotations

import json
from pathlib import Path

from transformers import (AutoConfig, AutoImageProcessor, AutoModelForObjectDetection, ConditionalDetrConfig,
                          ConditionalDetrForObjectDetection, ConditionalDetrImageProcessor, RTDetrConfig,
                          RTDetrForObjectDetection, RTDetrImageProcessor, TimmBackboneConfig)

from shared.toolkit.config import ConfigError
from shared.toolkit.models import is_packaged, load_timm_backbone_state_dict, packaged_timm_name, resolve_model
from tasks.object_detection.modeling_dense_detector import DenseDetectorConfig, DenseDetectorForObjectDetection

ARCHITECTURES = ("dense", "conditional_detr", "rt_detr")  # heads built on a packaged backbone


def register_dense_detector() -> None:
    """Let the Auto classes (and so the pipeline) load saved dense detectors, and make save_pretrained
    write auto_map plus a copy of the modeling file, so the folder also loads with trust_remote_code=True."""
    AutoConfig.register(DenseDetectorConfig.model_type, DenseDetectorConfig, exist_ok=True)
    AutoModelForObjectDetection.register(DenseDetectorConfig, DenseDetectorForObjectDetection, exist_ok=True)
    DenseDetectorConfig.register_for_auto_class()
    DenseDetectorForObjectDetection.register_for_auto_class("AutoModelForObjectDetection")


def _packaged_data_cfg(short_name: str) -> dict:
    """The packaged backbone's pretrained_cfg (input normalisation) from its converted folder."""
    config = json.loads((Path(resolve_model(short_name)) / "config.json").read_text())
    return config.get("pretrained_cfg", {})


def build_processor(reference: str, architecture: str, image_size: int | None):
    """A stock DETR-family image processor: it resizes and normalises, and its post-processing decodes boxes.

    A packaged backbone gets a fixed square resize (no padding) and the backbone's own mean/std; the dense
    head and Conditional DETR share ConditionalDetrImageProcessor (sigmoid scores, top-k), RT-DETR its own.
    """
    if not is_packaged(reference):
        processor = AutoImageProcessor.from_pretrained(reference)
        if image_size:
            processor.size = {"height": image_size, "width": image_size}
        return processor
    data_cfg = _packaged_data_cfg(reference)
    side = image_size or 384
    common = dict(size={"height": side, "width": side}, do_normalize=True, image_mean=list(data_cfg["mean"]),
                  image_std=list(data_cfg["std"]), do_pad=False)
    if architecture == "rt_detr":
        return RTDetrImageProcessor(**common)
    return ConditionalDetrImageProcessor(**common)


def _labels(labels: list[str]) -> dict:
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)}}


def _timm_backbone(timm_name: str, out_indices: list[int]) -> TimmBackboneConfig:
    # freeze_batch_norm_2d=True: without it the DETR family swaps timm's BatchNormAct2d (which carries the
    # ReLU6) for a plain frozen BatchNorm, silently deleting every activation of the backbone.
    return TimmBackboneConfig(backbone=timm_name, out_indices=out_indices, freeze_batch_norm_2d=True)


def build_packaged(short_name: str, architecture: str, labels: list[str], image_size: int):
    """A new detector head on the packaged ImageNet backbone, backbone weights loaded and checked."""
    timm_name, weights = packaged_timm_name(short_name), load_timm_backbone_state_dict(short_name)
    if architecture == "dense":
        config = DenseDetectorConfig(backbone=timm_name, backbone_data_cfg=_packaged_data_cfg(short_name),
                                     **_labels(labels))
        model = DenseDetectorForObjectDetection(config)
        backbone = model.backbone
    elif architecture == "conditional_detr":
        config = ConditionalDetrConfig(backbone_config=_timm_backbone(timm_name, [4]), encoder_layers=3,
                                       decoder_layers=3, num_queries=100, **_labels(labels))
        model = ConditionalDetrForObjectDetection(config)
        backbone = model.model.backbone.model
    elif architecture == "rt_detr":
        config = RTDetrConfig(backbone_config=_timm_backbone(timm_name, [2, 3, 4]), encoder_in_channels=[32, 96, 320],
                              feat_strides=[8, 16, 32], decoder_layers=3, num_queries=100,
                              anchor_image_size=[image_size, image_size], **_labels(labels))
        model = RTDetrForObjectDetection(config)
        backbone = model.model.backbone.model._backbone
    else:
        raise ConfigError(f"--architecture {architecture!r}: use one of {ARCHITECTURES}")
    missing = backbone.load_state_dict(weights, strict=False).missing_keys
    if missing:  # only ImageNet head tensors may be left over, never a backbone tensor
        raise RuntimeError(f"packaged {short_name} weights do not cover the {architecture} backbone: missing {missing[:5]}")
    return model


def build_detector(reference: str, architecture: str, labels: list[str], image_size: int):
    """The packaged backbone with a new head, or a hub id / saved folder with its head resized to `labels`."""
    if is_packaged(reference):
        return build_packaged(reference, architecture, labels, image_size or 384)
    return AutoModelForObjectDetection.from_pretrained(reference, ignore_mismatched_sizes=True, **_labels(labels))
