"""Optimizers, parameter groups and learning-rate schedules against hand-computed values."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from shared.toolkit.config import TrainConfig
from shared.training.optim import build_optimizer, build_scheduler, lr_multiplier, parameter_groups


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


def _tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=3,
                                                    num_attention_heads=2, intermediate_size=16, num_labels=2))


def test_layerwise_lr_decay_scales_by_depth_and_keeps_the_head_at_full_rate():
    model = _tiny_bert()
    optimizer = build_optimizer(_cfg(learning_rate=1.0, layerwise_lr_decay=0.5), model)
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert rates[id(named["bert.embeddings.word_embeddings.weight"])] == 0.5 ** 4
    assert rates[id(named["bert.encoder.layer.0.attention.self.query.weight"])] == 0.5 ** 3
    assert rates[id(named["bert.encoder.layer.2.output.dense.bias"])] == 0.5
    assert rates[id(named["bert.pooler.dense.weight"])] == 1.0
    assert rates[id(named["classifier.weight"])] == 1.0
    # decay still by rank inside every rate
    decays = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decays[id(named["bert.encoder.layer.0.attention.self.query.bias"])] == 0.0


def test_layerwise_lr_decay_multiplies_task_rate_overrides_and_refuses_layerless_models():
    from shared.toolkit.config import ConfigError

    model = _tiny_bert()
    optimizer = build_optimizer(_cfg(learning_rate=1.0, layerwise_lr_decay=0.5), model, {"bert.": 0.1})
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert rates[id(named["bert.encoder.layer.1.output.dense.weight"])] == pytest.approx(0.1 * 0.25)
    assert rates[id(named["classifier.weight"])] == 1.0
    with pytest.raises(ConfigError, match="no numbered layers"):
        build_optimizer(_cfg(layerwise_lr_decay=0.5), torch.nn.Linear(2, 2))


def test_l1_and_l2_penalties_sum_weight_matrices_only():
    from shared.training.losses import weight_penalty

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
    assert weight_penalty(model, 0.1, 0.0).item() == pytest.approx(0.35)
    assert weight_penalty(model, 0.0, 0.1).item() == pytest.approx(0.525)
    assert weight_penalty(model, 0.0, 0.0) == 0.0


def test_l2_penalty_shrinks_weights_in_training(tiny_bert_dir, toy_text_files, tmp_path):
    from safetensors.torch import load_file

    from shared.toolkit.cli import main
    from tests.helpers import tiny_text_args

    args = ["--num_train_epochs", "2", "--eval_strategy", "no", "--weight_decay", "0", "--data_report", "false"]
    norm = lambda out: sum(v.float().pow(2).sum().item() for k, v in
                           load_file(str(out / "run" / "last" / "model.safetensors")).items() if v.dim() >= 2)
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "plain", *args))
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "l2", *args,
                                                "--l2_penalty", "0.01"))
    assert norm(tmp_path / "l2") < 0.9 * norm(tmp_path / "plain")
