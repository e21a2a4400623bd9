"""LoRA through peft: target modules per architecture, task heads kept fully trainable."""
from __future__ import annotations

from typing import Callable

import torch


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def apply_peft(model: torch.nn.Module, cfg, task, log: Callable[[str], None] = print) -> torch.nn.Module:
    """Wrap `model` with LoRA adapters; the task's head modules stay trainable and are saved whole."""
    from peft import LoraConfig, get_peft_model

    targets = cfg.lora_target_modules.split(",") if cfg.lora_target_modules else task.lora_target_modules(model)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, modules_to_save=task.head_modules(model))
    wrapped = get_peft_model(model, lora)
    trainable, total = count_parameters(wrapped)
    log(f"LoRA r={cfg.lora_r} on {targets}: {trainable:,} trainable of {total:,} parameters "
        f"({100 * trainable / total:.2f}%)")
    return wrapped
