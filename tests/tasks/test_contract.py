"""Every registered task honours the Task contract: config, hooks, tiny train.py, recipes, README."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from shared.config import TrainConfig, parse_config
from shared.task import Task, get_task, list_tasks

ROOT = Path(__file__).resolve().parents[2]
TASK_DIRS = sorted(p.parent.name for p in (ROOT / "tasks").glob("*/task.py"))
REQUIRED_HOOKS = ["load_data", "build_processor", "build_model", "preprocess", "collate_fn", "metric"]


def test_every_task_package_is_registered():
    assert TASK_DIRS, "no task packages found"
    assert list_tasks() == TASK_DIRS
    assert len(list_tasks()) == len(TASK_DIRS)


def test_unknown_task_names_the_known_ones():
    with pytest.raises(KeyError, match="known: "):
        get_task("no_such_task")


@pytest.mark.parametrize("name", list_tasks())
def test_task_overrides_the_required_hooks(name):
    task = get_task(name)
    assert issubclass(task.config_class, TrainConfig)
    assert task.pipeline_tag
    for hook in REQUIRED_HOOKS:
        assert getattr(type(task), hook) is not getattr(Task, hook), f"{name} does not implement {hook}"


@pytest.mark.parametrize("name", list_tasks())
def test_train_script_is_a_few_lines_over_the_engine(name):
    script = ROOT / "tasks" / name / "train.py"
    code = [line for line in script.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(code) <= 12, f"{script} has {len(code)} code lines"
    assert f'main("{name}")' in script.read_text()
    ast.parse(script.read_text())


@pytest.mark.parametrize("name", list_tasks())
def test_recipes_parse_into_the_task_config(name):
    recipes = sorted((ROOT / "tasks" / name / "recipes").glob("*.yaml"))
    assert recipes, f"{name} ships no recipe"
    for recipe in recipes:
        assert recipe.read_text().startswith("#"), f"{recipe} should open with a comment giving the command"
        parse_config(get_task(name).config_class, ["--config", str(recipe)])


@pytest.mark.parametrize("name", list_tasks())
def test_readme_shows_usage_data_format_and_measured_results(name):
    text = (ROOT / "tasks" / name / "README.md").read_text().lower()
    assert f"tasks/{name}/train.py" in text
    assert "data format" in text and "results" in text and "| " in text


def test_engine_never_imports_or_names_tasks():
    for path in (ROOT / "shared").rglob("*.py"):
        source = path.read_text()
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("tasks"), f"{path} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("tasks") for a in node.names), f"{path} imports tasks"
        for name in TASK_DIRS:
            assert f'"{name}"' not in source, f"{path} names the task {name}"


def test_hooks_never_touch_accelerate():
    for name in list_tasks():
        source = inspect.getsource(inspect.getmodule(type(get_task(name))))
        assert "accelerate" not in source, f"tasks/{name}/task.py uses accelerate; that is the engine's job"
