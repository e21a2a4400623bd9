"""A dense single-stage detector (CenterNet/TTFNet style) on a timm backbone, as a transformers model.

One prediction per feature-map location: a class heatmap (sigmoid) and the distances from the location to
the four box edges. Training targets are Gaussians around each box centre (focal loss) and GIoU on the
locations inside the box, weighted by the Gaussian. In eval mode the model keeps only heatmap peaks (a
3x3 max-pool, CenterNet's replacement for NMS) and returns the top `max_detections` of them, DETR-style:
`logits` [B, Q, C] and `pred_boxes` [B, Q, 4] (normalised cx, cy, w, h), so a stock sigmoid
post-processor (ConditionalDetrImageProcessor) and `pipeline("object-detection")` work unchanged.

This file imports only torch, torchvision, timm and transformers on purpose: `save_pretrained` copies it
beside the weights (auto_map), so a saved folder loads with `trust_remote_code=True` without the project.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import timm
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import generalized_box_iou_loss
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

PRIOR_PROBABILITY = 0.01  # initial heatmap score: nearly every location is background
INITIAL_DISTANCE = 4.0  # cells from a location to each box edge at initialisation (exp of the bias)


class DenseDetectorConfig(PretrainedConfig):
    model_type = "dense_detector"

    def __init__(self, backbone: str = "mobilenetv2_100", out_indices=(2, 3, 4), neck_channels: int = 64,
                 head_convs: int = 2, max_detections: int = 100, peak_kernel: int = 3, gaussian_alpha: float = 0.54,
                 box_loss_weight: float = 5.0, backbone_data_cfg: dict | None = None, **kwargs):
        self.backbone = backbone
        self.out_indices = list(out_indices)  # the first one sets the output stride
        self.neck_channels = neck_channels
        self.head_convs = head_convs
        self.max_detections = max_detections
        self.peak_kernel = peak_kernel
        self.gaussian_alpha = gaussian_alpha  # Gaussian sigma = alpha * box side / 6 (TTFNet)
        self.box_loss_weight = box_loss_weight
        # the backbone's input size and normalisation, for reference. Not named `pretrained_cfg`: transformers
        # takes any config.json with that key for a timm checkpoint and then ignores preprocessor_config.json
        self.backbone_data_cfg = backbone_data_cfg or {}
        super().__init__(**kwargs)


@dataclass
class DenseDetectorOutput(ModelOutput):
    loss: torch.FloatTensor | None = None
    loss_dict: dict | None = None
    logits: torch.FloatTensor | None = None
    pred_boxes: torch.FloatTensor | None = None


def _conv_gn_relu(channels: int) -> nn.Sequential:
    # GroupNorm, not BatchNorm: no running statistics, so eval matches training even with small batches
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.GroupNorm(16, channels),
                         nn.ReLU(inplace=True))


def _head(channels: int, outputs: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*[_conv_gn_relu(channels) for _ in range(depth)], nn.Conv2d(channels, outputs, 1))


class DenseDetectorForObjectDetection(PreTrainedModel):
    config_class = DenseDetectorConfig
    main_input_name = "pixel_values"
    base_model_prefix = "detector"

    def __init__(self, config: DenseDetectorConfig):
        super().__init__(config)
        self.backbone = timm.create_model(config.backbone, pretrained=False, features_only=True,
                                          out_indices=tuple(config.out_indices))
        channels = config.neck_channels
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in self.backbone.feature_info.channels())
        self.smooth = _conv_gn_relu(channels)
        self.heatmap_head = _head(channels, config.num_labels, config.head_convs)
        self.box_head = _head(channels, 4, config.head_convs)
        self.heatmap_head[-1].is_heatmap_output = True
        self.box_head[-1].is_box_output = True
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            if getattr(module, "is_heatmap_output", False):
                init.normal_(module.weight, std=0.01)
                init.constant_(module.bias, -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY))
                return
            if getattr(module, "is_box_output", False):  # small, finite boxes at first: exp() of a large random
                init.normal_(module.weight, std=0.01)  # output saturates, and the GIoU gradient then vanishes
                init.constant_(module.bias, math.log(INITIAL_DISTANCE))
                return
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)

    def _features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """FPN-style top-down fusion of the backbone levels, at the finest level's stride."""
        levels = self.backbone(pixel_values)
        fused = self.lateral[-1](levels[-1])
        for lateral, level in zip(reversed(self.lateral[:-1]), reversed(levels[:-1])):
            fused = lateral(level) + F.interpolate(fused, size=level.shape[-2:], mode="nearest")
        return self.smooth(fused)

    def forward(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None = None, labels: list | None = None,
                return_dict: bool | None = None, **kwargs) -> DenseDetectorOutput:
        """pixel_mask is accepted for DETR-processor compatibility; inputs are resized, never padded."""
        features = self._features(pixel_values)
        heatmap = self.heatmap_head(features).float()  # [B, C, H, W]; losses and decoding in fp32
        distances = self.box_head(features).float().clamp(max=8.0).exp()  # [B, 4, H, W], in cells
        boxes = _boxes_from_distances(distances)  # [B, H*W, 4] normalised x1, y1, x2, y2
        loss = loss_dict = None
        if labels is not None:
            loss_dict = self._loss(heatmap, boxes, labels)
            loss = loss_dict["loss_heatmap"] + self.config.box_loss_weight * loss_dict["loss_giou"]
        logits = heatmap.flatten(2).transpose(1, 2)  # [B, H*W, C]
        if not self.training:
            logits, boxes = self._peaks(heatmap, boxes)
        pred_boxes = _corners_to_center(boxes.clamp(0.0, 1.0))
        return DenseDetectorOutput(loss=loss, loss_dict=loss_dict, logits=logits, pred_boxes=pred_boxes)

    def _peaks(self, heatmap: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits where only local maxima keep their score, and the top `max_detections` locations."""
        kernel = self.config.peak_kernel
        pooled = F.max_pool2d(heatmap, kernel, stride=1, padding=kernel // 2)
        masked = heatmap.masked_fill(heatmap < pooled, -1e4).flatten(2).transpose(1, 2)  # [B, H*W, C]
        top = masked.max(-1).values.topk(min(self.config.max_detections, masked.shape[1]), dim=1).indices
        gather = lambda values: values.gather(1, top[..., None].expand(-1, -1, values.shape[-1]))
        return gather(masked), gather(boxes)

    def _loss(self, heatmap: torch.Tensor, boxes: torch.Tensor, labels: list) -> dict:
        height, width = heatmap.shape[-2:]
        centres = _cell_centres(height, width, heatmap.device)  # [H*W, 2] normalised x, y
        heat_losses, box_losses, box_count = [], [], 0
        for image_heatmap, image_boxes, target in zip(heatmap, boxes, labels):
            classes, gt = target["class_labels"].long(), target["boxes"].float()  # gt: normalised cx, cy, w, h
            gaussians = self._gaussians(gt, centres, height, width)  # [N, H*W]
            wanted = torch.zeros_like(image_heatmap).flatten(1)  # [C, H*W]: per class, the max over its boxes
            if len(gt):
                wanted = wanted.scatter_reduce(0, classes[:, None].expand_as(gaussians), gaussians, "amax")
            heat_losses.append(_centre_focal_loss(image_heatmap.flatten(1), wanted))
            if len(gt):
                box_losses.append(self._box_loss(image_boxes, gt, gaussians, centres))
                box_count += len(gt)
        heat = torch.stack(heat_losses).sum() / max(1, sum(len(t["class_labels"]) for t in labels))
        giou = torch.stack(box_losses).sum() / box_count if box_losses else heatmap.sum() * 0.0
        return {"loss_heatmap": heat, "loss_giou": giou}

    def _gaussians(self, gt: torch.Tensor, centres: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """One Gaussian per box over the locations, exactly 1 at the cell holding the box centre."""
        cell = torch.tensor([1.0 / width, 1.0 / height], device=gt.device)
        peak = ((gt[:, :2] / cell).floor().clamp(min=0) + 0.5) * cell  # centre of the box's centre cell
        peak = torch.minimum(peak, 1.0 - cell / 2)
        sigma = torch.maximum(self.config.gaussian_alpha * gt[:, 2:] / 6, cell / 2)
        offset = (centres[None] - peak[:, None]) / sigma[:, None]  # [N, H*W, 2]
        return torch.exp(-0.5 * (offset ** 2).sum(-1))

    def _box_loss(self, predicted: torch.Tensor, gt: torch.Tensor, gaussians: torch.Tensor,
                  centres: torch.Tensor) -> torch.Tensor:
        """GIoU of the boxes predicted inside each ground-truth box, Gaussian-weighted, summed per box."""
        corners = torch.cat([gt[:, :2] - gt[:, 2:] / 2, gt[:, :2] + gt[:, 2:] / 2], dim=-1)  # [N, 4]
        inside = ((centres[None] >= corners[:, None, :2]) & (centres[None] <= corners[:, None, 2:])).all(-1)
        weights = gaussians * inside
        owner = weights.argmax(0)  # a location inside several boxes regresses the one it is most central to
        weights = weights * F.one_hot(owner, len(gt)).T
        weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-6)  # each box counts once
        where = weights.sum(0) > 0
        losses = generalized_box_iou_loss(predicted[where], corners[owner[where]], reduction="none")
        return (losses * weights[:, where].sum(0)).sum()


def _cell_centres(height: int, width: int, device) -> torch.Tensor:
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.flatten(), grid_y.flatten()], dim=-1)


def _boxes_from_distances(distances: torch.Tensor) -> torch.Tensor:
    """[B, 4, H, W] left/top/right/bottom distances in cells -> [B, H*W, 4] normalised x1, y1, x2, y2."""
    height, width = distances.shape[-2:]
    centres = _cell_centres(height, width, distances.device)
    scale = torch.tensor([1.0 / width, 1.0 / height, 1.0 / width, 1.0 / height], device=distances.device)
    ltrb = distances.flatten(2).transpose(1, 2) * scale
    return torch.cat([centres - ltrb[..., :2], centres + ltrb[..., 2:]], dim=-1)


def _corners_to_center(boxes: torch.Tensor) -> torch.Tensor:
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], dim=-1)


def _centre_focal_loss(logits: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), summed; positives are the exact peaks."""
    positive = wanted >= 1.0 - 1e-4
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = log_p.exp()
    positive_loss = ((1 - p) ** 2 * log_p)[positive].sum()
    negative_loss = ((1 - wanted) ** 4 * p ** 2 * log_not_p)[~positive].sum()
    return -(positive_loss + negative_loss)
