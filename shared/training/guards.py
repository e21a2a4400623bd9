"""Non-finite guards of a run: a NaN or inf loss or weight stops training before it reaches a checkpoint or export."""
from __future__ import annotations

import math
from typing import Iterable

import torch


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or inf."""


def check_finite_loss(loss: float, step: int, epoch: int) -> None:
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"loss became {loss} at or before optimizer step {step} (epoch {epoch}). Try a lower "
            f"--learning_rate, --max_grad_norm 1.0, warmup steps, or --mixed_precision bf16/no instead of fp16.")


def check_finite_weights(accelerator, tensors: Iterable[torch.Tensor], step: int) -> None:
    """Every process checks its own tensors and all agree: a non-finite update must reach no checkpoint or export."""
    bad = torch.tensor(float(not all(bool(t.isfinite().all()) for t in tensors)), device=accelerator.device)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="sum")
    if bad.item():
        raise TrainingDiverged(
            f"the weights became non-finite (nan or inf) at optimizer step {step}; nothing was saved "
            f"from that step on. Try a lower --learning_rate, --max_grad_norm 1.0, or warmup steps.")
