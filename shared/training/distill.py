"""Knowledge distillation and the training objective: task loss, soft-target KL, weight penalties."""
from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from typing import Callable

import torch
import torch.nn.functional as F

from shared.toolkit.config import ConfigError
from shared.training.losses import LossSettings, weight_penalty


def distillation_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) on temperature-softened distributions over dim 1, times T^2 (Hinton et al. 2015).

    Works per position: [B, C] for classification, [B, C, H, W] for segmentation (mean over positions).
    Teacher maps of another spatial size are resized to the student's.
    """
    student, teacher = student.float(), teacher.float()
    if teacher.dim() > 2 and teacher.shape[2:] != student.shape[2:]:
        teacher = F.interpolate(teacher, size=student.shape[2:], mode="bilinear", align_corners=False)
    log_q = F.log_softmax(student / temperature, dim=1)
    log_p = F.log_softmax(teacher / temperature, dim=1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(dim=1)
    return per_position.mean() * temperature ** 2


class Distiller:
    """A frozen teacher whose soft targets are blended into the student's loss."""

    def __init__(self, teacher: torch.nn.Module, task, alpha: float, temperature: float,
                 autocast: Callable = nullcontext):
        self.teacher, self.task = teacher.eval().requires_grad_(False), task
        self.alpha, self.temperature, self.autocast = alpha, temperature, autocast

    @torch.no_grad()
    def teacher_logits(self, batch: dict) -> torch.Tensor | None:
        with self.autocast():
            outputs = self.teacher(**self.task.teacher_inputs(batch))
        return self.task.distillation_logits(outputs)

    def blend(self, task_loss: torch.Tensor, outputs, batch: dict) -> torch.Tensor:
        kl = distillation_kl(self.task.distillation_logits(outputs), self.teacher_logits(batch), self.temperature)
        return self.alpha * kl + (1.0 - self.alpha) * task_loss

    def check(self, batch: dict, num_labels: int | None) -> None:
        """One teacher forward on a validation batch, so a mismatch fails before any training step."""
        device = next(self.teacher.parameters()).device
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        try:
            logits = self.teacher_logits(batch)
        except Exception as err:  # wrong inputs for this teacher: say what to fix
            raise ConfigError(f"--teacher_model failed on a batch of this task's inputs ({type(err).__name__}: "
                              f"{err}); the teacher must take the same inputs as the student") from err
        if logits is None or logits.dim() < 2 or logits.shape[1] != num_labels:
            shape = None if logits is None else tuple(logits.shape)
            raise ConfigError(f"--teacher_model gives logits of shape {shape}; distillation needs classes on "
                              f"dim 1 matching the {num_labels} labels")


def load_distiller(task, cfg, labels: list[str] | None, device, autocast: Callable) -> Distiller | None:
    """The teacher named by --teacher_model, built by the task's own build_model and checked for labels."""
    if not cfg.teacher_model:
        return None
    if not labels:
        raise ConfigError(f"--teacher_model: task {task.name!r} has no class labels to distil")
    _check_teacher_labels(cfg.teacher_model, labels)
    # The task's own build_model, on a copy of the config naming the teacher (frozen below, adapters off).
    teacher_task = type(task)(dataclasses.replace(cfg, model_name_or_path=cfg.teacher_model, use_peft=False))
    teacher = teacher_task.build_model(labels).to(device)
    return Distiller(teacher, task, cfg.distill_alpha, cfg.distill_temperature, autocast)


def _check_teacher_labels(reference: str, labels: list[str]) -> None:
    """A teacher trained on other labels would get a fresh random head: refuse it."""
    from transformers import AutoConfig

    from shared.toolkit.models import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(reference))
    names = list(getattr(config, "label_names", None) or (config.id2label or {}).values())
    if len(names) != len(labels) or (names != labels and not all(str(n).startswith("LABEL_") for n in names)):
        raise ConfigError(f"--teacher_model {reference} was trained on labels {names[:10]}, but the data has "
                          f"{labels[:10]}; give a teacher fine-tuned on these labels")


class TrainingObjective:
    """The loss the optimizer minimises: the task's loss, blended with distillation and penalties when set."""

    def __init__(self, task, loss: LossSettings, distiller: Distiller | None = None, l1: float = 0.0, l2: float = 0.0):
        self.task, self.loss, self.distiller, self.l1, self.l2 = task, loss, distiller, l1, l2
        self.checked = False

    def __call__(self, model, batch: dict):
        loss, outputs = self.task.compute_loss(model, batch, self.loss)
        if not self.checked:  # first forward, before any optimizer step
            self.checked = True
            if self.loss.focal_ignored:
                raise ConfigError(f"--loss focal: task {self.task.name!r} computes its loss without "
                                  "shared.training.losses.classification_loss, so focal loss would not apply")
        if self.distiller:
            loss = self.distiller.blend(loss, outputs, batch)
        return loss + weight_penalty(model, self.l1, self.l2), outputs
