"""Optimizers, parameter groups and learning-rate schedules against hand-computed values."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from shared.config import TrainConfig
from shared.optim import build_optimizer, build_scheduler, lr_multiplier, parameter_groups


def _cfg(**overrides) -> TrainConfig:
    return TrainConfig(**overrides)


def test_weight_decay_skips_biases_and_norm_scales_by_rank():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Conv2d(2, 2, 3))
    groups = parameter_groups(model, 0.1)
    decayed = {id(p) for g in groups if g["weight_decay"] == 0.1 for p in g["params"]}
    assert decayed == {id(model[0].weight), id(model[2].weight)}
    assert sum(len(g["params"]) for g in groups) == 6


def test_lr_overrides_give_the_backbone_its_own_rate():
    model = torch.nn.ModuleDict({"backbone": torch.nn.Linear(2, 2), "head": torch.nn.Linear(2, 2)})
    optimizer = build_optimizer(_cfg(learning_rate=1e-3), model, {"backbone.": 1e-5})
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert rates[id(model["backbone"].weight)] == 1e-5 and rates[id(model["head"].weight)] == 1e-3


@pytest.mark.parametrize("name, cls", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam),
                                       ("sgd", torch.optim.SGD), ("adagrad", torch.optim.Adagrad),
                                       ("rmsprop", torch.optim.RMSprop)])
def test_every_optimizer_builds_and_steps(name, cls):
    model = torch.nn.Linear(3, 1)
    optimizer = build_optimizer(_cfg(optimizer=name, nesterov=True), model)
    assert isinstance(optimizer, cls)
    before = model.weight.detach().clone()
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, model.weight)


def test_schedule_values_by_hand():
    # warmup 2 of 10 steps: (s+1)/(w+1) during warmup, then the decay over the remaining 8.
    assert lr_multiplier("linear", 0, 2, 10) == pytest.approx(1 / 3)
    assert lr_multiplier("linear", 2, 2, 10) == pytest.approx(1.0)
    assert lr_multiplier("linear", 6, 2, 10) == pytest.approx(0.5)
    assert lr_multiplier("linear", 10, 2, 10) == pytest.approx(0.0)
    assert lr_multiplier("cosine", 6, 2, 10) == pytest.approx(0.5)
    assert lr_multiplier("cosine", 4, 2, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_multiplier("constant", 7, 2, 10) == 1.0
    assert lr_multiplier("polynomial", 6, 2, 10, lr_end_ratio=0.1, power=2.0) == pytest.approx(0.1 + 0.9 * 0.25)
    assert lr_multiplier("exponential", 10, 2, 10) == pytest.approx(0.01)
    assert lr_multiplier("exponential", 5, 2, 10, gamma=0.5) == pytest.approx(0.125)


def test_scheduler_runs_the_whole_schedule_in_total_steps():
    model = torch.nn.Linear(2, 2)
    cfg = _cfg(learning_rate=0.1, lr_scheduler_type="linear", warmup_steps=0)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, total_steps=4)
    seen = []
    for _ in range(4):
        optimizer.step()
        scheduler.step()
        seen.append(scheduler.get_last_lr()[0])
    assert seen == pytest.approx([0.075, 0.05, 0.025, 0.0])


def test_reduce_on_plateau_halves_after_patience_and_checkpoints():
    model = torch.nn.Linear(2, 2)
    cfg = _cfg(learning_rate=0.1, lr_scheduler_type="reduce_on_plateau", plateau_patience=1, plateau_factor=0.5)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, total_steps=10, greater_is_better=True)
    for value in (0.5, 0.5, 0.5):
        scheduler.step_metric(value)
    assert scheduler.get_last_lr()[0] == pytest.approx(0.05)
    state = scheduler.state_dict()
    fresh = build_scheduler(cfg, build_optimizer(cfg, model), total_steps=10)
    fresh.load_state_dict(state)
    assert fresh.plateau.num_bad_epochs == scheduler.plateau.num_bad_epochs
