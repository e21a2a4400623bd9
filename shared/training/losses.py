"""Losses the engine offers every classification-style task: class weights, label smoothing, focal loss,
and L1/L2 weight penalties."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


def label_counts(label_ids: list[int] | None, num_labels: int) -> list[int] | None:
    """How many training examples carry each label id (None when labels are not classes)."""
    if label_ids is None:
        return None
    counts = Counter(label_ids)
    return [counts[c] for c in range(num_labels)]


def class_weight_tensor(spec: str | None, counts: list[int] | None, num_labels: int) -> torch.Tensor | None:
    """Parse --class_weights from per-label training counts (examples, or pixels for dense tasks).

    'balanced': n / (k * count_c), as scikit-learn; 'sqrt_balanced': its square root, a milder
    correction for very skewed counts (segmentation pixels); or an explicit comma-separated list.
    """
    if not spec:
        return None
    if spec in ("balanced", "sqrt_balanced"):
        if counts is None:
            raise ValueError(f"--class_weights {spec} needs integer labels in the training data")
        missing = [c for c in range(num_labels) if counts[c] == 0]
        if missing:
            raise ValueError(f"--class_weights {spec}: labels {missing} have no training example")
        total = sum(counts)
        weights = torch.tensor([total / (num_labels * counts[c]) for c in range(num_labels)], dtype=torch.float32)
        return weights.sqrt() if spec == "sqrt_balanced" else weights
    try:
        weights = [float(x) for x in spec.split(",")]
    except ValueError as err:
        raise ValueError(f"--class_weights {spec!r}: expected 'balanced' or comma-separated numbers") from err
    if len(weights) != num_labels:
        raise ValueError(f"--class_weights has {len(weights)} values but there are {num_labels} labels")
    return torch.tensor(weights, dtype=torch.float32)


@dataclass
class LossSettings:
    """The run's classification-loss choices, carried by the training objective into compute_loss.

    `applied` counts classification_loss calls, so the engine can refuse --loss focal for a task whose
    loss never goes through it.
    """

    class_weights: torch.Tensor | None = None
    label_smoothing: float = 0.0
    focal_gamma: float = 0.0  # 0: plain cross-entropy
    applied: int = field(default=0, compare=False)

    @classmethod
    def from_config(cls, cfg, class_weights: torch.Tensor | None) -> "LossSettings":
        return cls(class_weights, cfg.label_smoothing, cfg.focal_gamma if cfg.loss == "focal" else 0.0)

    @property
    def is_custom(self) -> bool:
        """True when a task must compute classification_loss instead of taking the model's own loss."""
        return self.class_weights is not None or self.label_smoothing > 0 or self.focal_gamma > 0

    @property
    def focal_ignored(self) -> bool:
        """True when --loss focal was asked for but no loss went through classification_loss."""
        return self.focal_gamma > 0 and not self.applied


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, loss: LossSettings,
                        ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy (or focal loss) over dim 1, for [B, C] and [B, C, H, W] logits, computed in fp32.

    Focal loss scales each term by (1 - p_true) ** gamma (Lin et al. 2017) and is averaged like weighted
    cross-entropy (sum over sum of class weights), so gamma 0 gives exactly F.cross_entropy.
    """
    loss.applied += 1
    gamma, smoothing = loss.focal_gamma, loss.label_smoothing
    weight = loss.class_weights.to(logits.device) if loss.class_weights is not None else None
    logits = logits.float()
    if not gamma:
        return F.cross_entropy(logits, labels, weight=weight, label_smoothing=smoothing, ignore_index=ignore_index)
    per_item = F.cross_entropy(logits, labels, weight=weight, label_smoothing=smoothing,
                               ignore_index=ignore_index, reduction="none")
    valid = labels != ignore_index
    safe = labels.masked_fill(~valid, 0)
    p_true = logits.log_softmax(1).gather(1, safe.unsqueeze(1)).squeeze(1).exp()
    focal = (1.0 - p_true).pow(gamma) * per_item
    norm = weight[safe] if weight is not None else torch.ones_like(p_true)
    return focal[valid].sum() / norm[valid].sum().clamp_min(1e-12)


def weight_penalty(model: torch.nn.Module, l1: float, l2: float) -> torch.Tensor | float:
    """l1 * sum|w| + l2 * sum w^2 over trainable weight matrices (rank >= 2, as weight decay chooses)."""
    if not (l1 or l2):
        return 0.0
    weights = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    total = weights[0].new_zeros((), dtype=torch.float32)
    for w in weights:
        if l1:
            total = total + l1 * w.float().abs().sum()
        if l2:
            total = total + l2 * w.float().pow(2).sum()
    return total
