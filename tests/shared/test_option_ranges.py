"""Every numeric option of every task declares its valid range, and a recipe value is refused exactly like a flag."""
from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from shared.task import get_task, list_tasks
from shared.toolkit.config import ConfigError, _bounds, _in_range, _Parser, option_range, parse_config

TASKS = list_tasks()


def _numeric_options(config_class: type) -> dict[str, type]:
    """name -> int or float for every int, float, Optional[int] or Optional[float] field (bool is not a number)."""
    hints = typing.get_type_hints(config_class)
    found = {}
    for option in dataclasses.fields(config_class):
        kinds = set(typing.get_args(hints[option.name]) or [hints[option.name]]) - {type(None)}
        if kinds in ({int}, {float}):
            found[option.name] = kinds.pop()
    return found


def _outside(interval: str, kind: type):
    """A value just outside `interval` (below it if it has a finite lower bound), or None for (-inf, inf)."""
    low, high = _bounds(interval)
    step = 1 if kind is int else 0.5
    if not math.isinf(low):
        return kind(low if interval[0] == "(" else low - step)
    if not math.isinf(high):
        return kind(high if interval[-1] == ")" else high + step)
    return None


def _message(config_class: type, args: list[str]) -> str:
    with pytest.raises(ConfigError) as refused:
        parse_config(config_class, args)
    return str(refused.value)


def test_the_registry_holds_every_task():
    assert len(TASKS) == 7, TASKS


@pytest.mark.parametrize("task", TASKS)
def test_every_numeric_option_declares_a_range_that_holds_its_default(task):
    """A new int or float option without a range fails here: declare one with field(metadata={"range": ...})."""
    config_class = get_task(task).config_class
    options = _numeric_options(config_class)
    assert len(options) > 40, options  # TrainConfig's own and the task's
    missing = [name for name in options if option_range(config_class, name) is None]
    assert not missing, f"{task}: numeric options without a range: {missing}"
    defaults = config_class()
    for name in options:
        interval, default = option_range(config_class, name), getattr(defaults, name)
        _bounds(interval)  # well-formed
        assert default is None or _in_range(default, interval), f"{task}: --{name} default {default} not in {interval}"


@pytest.mark.parametrize("task", TASKS)
def test_an_out_of_range_value_gives_the_same_one_line_error_in_a_recipe_and_as_a_flag(task, tmp_path):
    config_class = get_task(task).config_class
    recipe = tmp_path / "recipe.yaml"
    checked = 0
    for name, kind in _numeric_options(config_class).items():
        value = _outside(option_range(config_class, name), kind)
        text = "nan" if value is None else str(value)  # no value lies outside (-inf, inf): the finite check
        recipe.write_text(f"{name}: {'.nan' if value is None else text}\n")
        as_flag = _message(config_class, [f"--{name}", text])
        from_recipe = _message(config_class, ["--config", str(recipe)])
        assert from_recipe == as_flag, (name, text)
        assert f"--{name}" in as_flag and "\n" not in as_flag, as_flag
        checked += 1
    assert checked == len(_numeric_options(config_class))


@pytest.mark.parametrize("task", TASKS)
def test_help_shows_each_range_and_does_not_fail(task, capsys):
    """argparse %-formats help texts: a "1%" in one made --help of every train.py raise."""
    with pytest.raises(SystemExit) as stop:
        parse_config(get_task(task).config_class, ["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "Range: [1, inf)" in out and "1% by the end" in out


def test_a_subclass_changing_only_a_default_keeps_the_declared_range():
    config_class = get_task("semantic_segmentation").config_class  # backbone_lr_scale: float = 1.0, no metadata
    assert option_range(config_class, "backbone_lr_scale") == "(0, 1]"
    assert _message(config_class, ["--backbone_lr_scale", "2"]) == "--backbone_lr_scale must be in (0, 1], got 2.0"
    assert _Parser(config_class)._option_string_actions["--backbone_lr_scale"].help.endswith("Range: (0, 1].")


@pytest.mark.parametrize("task", TASKS)
def test_every_numeric_prediction_option_declares_a_range(task):
    """predict.py's own options (top_k, thresholds, max_predict_samples) are bounded like training's."""
    options_class = get_task(task).prediction_format().options_class
    options = _numeric_options(options_class)
    assert "max_predict_samples" in options
    missing = [name for name in options if option_range(options_class, name) is None]
    assert not missing, f"{task}: prediction options without a range: {missing}"
