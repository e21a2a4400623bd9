"""Exponential moving average of model weights, checkpointable with accelerate."""
from __future__ import annotations

from contextlib import contextmanager

import torch


class ModelEma:
    """Shadow copy of the floating-point parameters and buffers, updated after each optimizer step."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for name, value in model.state_dict().items():
            if name in self.shadow:
                self.shadow[name].lerp_(value.detach(), 1.0 - self.decay)

    @contextmanager
    def swapped_in(self, model: torch.nn.Module):
        """Run the block with the EMA weights loaded, then put the live weights back."""
        live = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        model.load_state_dict(self.shadow, strict=False)
        try:
            yield model
        finally:
            model.load_state_dict(live, strict=False)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
