"""Every registered task honours the Task contract: config, hooks, tiny train.py, recipes, README."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from shared.toolkit.config import TrainConfig, parse_config
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
        assert getattr(task, hook) is not getattr(Task, hook), f"{name} does not implement {hook}"


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
        source = inspect.getsource(inspect.getmodule(get_task(name)))
        assert "accelerate" not in source, f"tasks/{name}/task.py uses accelerate; that is the engine's job"


def _config_attribute_calls(tree: ast.AST) -> list[int]:
    """Lines of getattr/hasattr calls whose object is a config (`cfg`, `self.cfg`, `teacher_cfg`...)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") \
                and node.args:
            target = node.args[0]
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name == "cfg" or name.endswith("_cfg"):
                lines.append(node.lineno)
    return lines


def test_engine_never_reads_config_fields_by_name():
    """shared/ reads only TrainConfig fields, as attributes: a task's own options stay the task's business."""
    for path in (ROOT / "shared").rglob("*.py"):
        lines = _config_attribute_calls(ast.parse(path.read_text()))
        assert not lines, f"{path}:{lines[0]}: getattr/hasattr on a config"


def _task_classes(tree: ast.AST) -> list[ast.ClassDef]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
            and any(getattr(base, "id", "") == "Task" for base in node.bases)]


def _attribute_writes(function: ast.FunctionDef, owner: str) -> list[int]:
    """Lines where `function` assigns an attribute of `owner` (self.x = ..., self.x += ...)."""
    lines = []
    for node in ast.walk(function):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            for element in ast.walk(target):
                if isinstance(element, ast.Attribute) and getattr(element.value, "id", "") == owner:
                    lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("name", TASK_DIRS)
def test_no_hook_stores_state_on_the_task(name):
    """Only __init__ sets attributes on a task; nothing else in the task's package sets any on a task object."""
    for path in sorted((ROOT / "tasks" / name).glob("*.py")):
        tree = ast.parse(path.read_text())
        for cls in _task_classes(tree):
            for method in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"):
                lines = _attribute_writes(method, "self")
                assert not lines, f"{path}:{lines[0]}: {cls.name}.{method.name} sets an attribute on the task"
        for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            lines = _attribute_writes(function, "task")
            assert not lines, f"{path}:{lines[0]}: {function.name} sets an attribute on a task"


SMALL = ["--max_train_samples", "4", "--max_eval_samples", "4", "--per_device_train_batch_size", "2",
         "--per_device_eval_batch_size", "2", "--data_report", "false"]


@pytest.mark.parametrize("name", list_tasks())
def test_building_and_stepping_a_run_changes_neither_the_task_nor_its_config(name):
    """The embedded default, assembled by build_run and run for one train and one eval batch: afterwards the
    task holds exactly what construction gave it and the config equals the parsed one."""
    import copy

    import torch

    from shared.training.losses import LossSettings
    from shared.run import build_run

    task_class = get_task(name)
    cfg = parse_config(task_class.config_class, SMALL)
    parsed = copy.deepcopy(vars(cfg))
    task = task_class(cfg)
    built_with = dict(vars(task))
    run = build_run(task, splits=("train", "validation"))
    train_batch = run.collate([run.datasets["train"][i] for i in range(2)])
    run.model.train()
    loss, _ = task.compute_loss(run.model, train_batch, LossSettings.from_config(cfg, None))
    assert torch.isfinite(loss)
    run.model.eval()
    with torch.no_grad():
        task.eval_step(run.model, run.collate([run.datasets["validation"][i] for i in range(2)]))
    assert vars(task) == built_with, f"{name}: hooks set {sorted(set(vars(task)) - set(built_with))} on the task"
    assert vars(cfg) == parsed, f"{name}: hooks changed {[k for k in parsed if vars(cfg)[k] != parsed[k]]}"
