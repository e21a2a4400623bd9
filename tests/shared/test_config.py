"""Flags, YAML recipes and the errors for values that cannot work."""
from __future__ import annotations

import pytest

from shared.toolkit.config import ConfigError, TrainConfig, parse_config
from shared.toolkit.runtime import resolve_mixed_precision


def test_flags_parse_into_the_dataclass():
    cfg = parse_config(TrainConfig, ["--learning_rate", "0.01", "--optimizer", "sgd", "--nesterov"])
    assert (cfg.learning_rate, cfg.optimizer, cfg.nesterov) == (0.01, "sgd", True)


@pytest.mark.parametrize("flags, message", [
    (["--per_device_train_batch_size", "0"], "per_device_train_batch_size must be >= 1"),
    (["--validation_split", "1.5"], "validation_split must be in"),
    (["--ema_decay", "1.0"], "ema_decay must be in"),
    (["--lr_scheduler_type", "reduce_on_plateau", "--eval_strategy", "no"], "needs evaluations"),
    (["--early_stopping_patience", "2", "--eval_strategy", "no"], "needs evaluations"),
    (["--push_to_hub"], "needs --hub_model_id"),
    (["--max_train_steps", "0"], "max_train_steps must be >= 1"),
    (["--focal_gamma", "-1"], "focal_gamma"),
    (["--layerwise_lr_decay", "1.5"], "layerwise_lr_decay must be in"),
    (["--distill_alpha", "2"], "distill_alpha must be in"),
    (["--hpo_trials", "3", "--eval_strategy", "no"], "hpo_trials needs"),
])
def test_impossible_values_are_refused(flags, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(TrainConfig, flags)


def test_unknown_flag_and_bad_choice_fail(capsys):
    with pytest.raises((ConfigError, SystemExit)):
        parse_config(TrainConfig, ["--no_such_flag", "1"])
    with pytest.raises(ConfigError, match=r"^argument --optimizer: invalid choice: 'lamb' .*; see --help$"):
        parse_config(TrainConfig, ["--optimizer", "lamb"])  # one line, not argparse's usage dump
    with pytest.raises(ConfigError, match=r"not used by the HfArgumentParser: \['--learning_rat'"):
        parse_config(TrainConfig, ["--learning_rat", "1e-3"])  # a prefix of a real flag is not guessed


def test_recipe_errors_name_the_file(tmp_path):
    missing = tmp_path / "none.yaml"
    with pytest.raises(ConfigError, match="none.yaml: no such file"):
        parse_config(TrainConfig, ["--config", str(missing)])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="bad.yaml: expected a mapping"):
        parse_config(TrainConfig, ["--config", str(bad)])


def test_fp16_on_a_cpu_only_machine_is_refused(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        resolve_mixed_precision("fp16")
    monkeypatch.setattr("shared.toolkit.runtime.cpu_has_native_bf16", lambda: False)
    assert resolve_mixed_precision("auto") == "no"  # AVX2-only CPUs: bf16 autocast is slower than fp32
    monkeypatch.setattr("shared.toolkit.runtime.cpu_has_native_bf16", lambda: True)
    assert resolve_mixed_precision("auto") == "bf16"


@pytest.mark.parametrize("text, message", [
    ("learning_rate: null\n", r"^--config .*r\.yaml: learning_rate: null is not a value of this option; leave the key"),
    ("learning_rate: [0.1, 0.2]\n", r"^--config .*r\.yaml: learning_rate: expected one value, got a list \[0\.1, 0\.2\]$"),
    ("run_name: {a: 1}\n", r"^--config .*r\.yaml: run_name: expected a value, got a mapping \{'a': 1\}$"),
    ("config: other.yaml\n", r"^--config .*r\.yaml: a recipe cannot name another recipe \(config: other\.yaml\)"),
    ("1: 2\nlearning_rate: 0.1\n", r"^--config .*r\.yaml: unknown option\(s\) \['1'\]"),
])
def test_recipe_values_no_flag_could_give_are_refused_naming_the_file(tmp_path, text, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(ConfigError, match=message):
        parse_config(TrainConfig, ["--config", str(recipe)])


def test_recipe_values_are_parsed_as_flags_keep_dashes_and_nulls_where_allowed(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("run_name: -first\nlr_end: -0.0\nmax_train_steps: null\nseed: 7\n")
    cfg = parse_config(TrainConfig, ["--config", str(recipe), "--seed", "8"])
    assert (cfg.run_name, cfg.lr_end, cfg.max_train_steps, cfg.seed) == ("-first", 0.0, None, 8)
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match=r"b\.yaml: not valid YAML"):
        parse_config(TrainConfig, ["--config", str(binary)])
