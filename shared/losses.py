"""Losses the engine offers every classification-style task: class weights, label smoothing."""
from __future__ import annotations

from collections import Counter

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


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None,
                        label_smoothing: float = 0.0, ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy over dim 1 (works for [B, C] and [B, C, H, W]), computed in fp32."""
    weight = class_weights.to(logits.device) if class_weights is not None else None
    return F.cross_entropy(logits.float(), labels, weight=weight, label_smoothing=label_smoothing,
                           ignore_index=ignore_index)
