"""Every command-line entry point, run as a user runs it (a real subprocess), refuses a malformed input with
exit 2, exactly one line starting with `error: ` on stderr, and no traceback: `tasks/<task>/train.py` and
`tasks/<task>/predict.py` of each task, `python -m tasks.export`, each demo app `apps/<task>.py` and the
all-task launcher `python -m apps`.

The subprocesses of the rows selected are started together in a pool of two (each is mostly a Python start
that imports torch, transformers and gradio), so the file takes about half the time of running them one
after another; each test then checks its own row.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.task import list_tasks

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180  # seconds per call: an entry point that waits (a server started on bad input) fails, not hangs
WORKERS = 2

# One malformed input per train.py: a data file or folder that does not exist, or a task option outside its range
# given in a YAML recipe (refused exactly like the same flag).
TRAIN = {
    "text_classification": ("--train_file", "{tmp}/missing/train.csv", "{tmp}/missing/train.csv: no such file"),
    "question_answering": ("recipe", "n_best_size: 0", "--n_best_size must be in [1, inf), got 0"),
    "token_classification": ("--train_file", "{tmp}/missing/train.conll", "{tmp}/missing/train.conll: no such file"),
    "translation": ("recipe", "num_beams: 0", "--num_beams must be in [1, inf), got 0"),
    "image_classification": ("--train_dir", "{tmp}/missing/train", "--train_dir {tmp}/missing/train: no such folder"),
    "object_detection": ("recipe", "image_size: 16", "--image_size must be in [32, inf), got 16"),
    "semantic_segmentation": ("--train_dir", "{tmp}/missing/train", "{tmp}/missing/train/images is missing"),
}
# What --output each predict.py accepts (semantic segmentation writes a folder), so the model folder is what fails.
PREDICT_OUTPUT = {
    "text_classification": "out.csv", "question_answering": "out.json", "token_classification": "out.jsonl",
    "translation": "out.jsonl", "image_classification": "out.csv", "object_detection": "out.json",
    "semantic_segmentation": "masks",
}
MISSING_MODEL = "{tmp}/missing/run/best"


@dataclass(frozen=True)
class Row:
    id: str
    argv: tuple[str, ...]  # after the interpreter; "{tmp}" is this module's scratch folder
    expect: str  # part of the one error line


def _predict_args(task: str) -> tuple[str, ...]:
    return (f"tasks/{task}/predict.py", "--model_name_or_path", MISSING_MODEL, "--input", "{tmp}/missing/input",
            "--output", f"{{tmp}}/predictions/{PREDICT_OUTPUT[task]}")


def _rows() -> list[Row]:
    rows = []
    for task in list_tasks():
        flag, value, expect = TRAIN[task]
        given = ("--config", f"{{tmp}}/recipes/{task}.yaml") if flag == "recipe" else (flag, value)
        rows.append(Row(f"train-{task}", (f"tasks/{task}/train.py", "--output_dir", "{tmp}/runs", *given), expect))
    for task in list_tasks():
        if task == "text_classification":
            rows.append(Row(f"predict-{task}-no-input", (f"tasks/{task}/predict.py", "--model_name_or_path",
                                                         MISSING_MODEL, "--output", "{tmp}/predictions/out.csv"),
                            "give --model_name_or_path <run>/best, --input <file or folder> and --output <path>"))
        elif task == "image_classification":  # a prediction option out of range, before any model is looked for
            rows.append(Row(f"predict-{task}-max-predict-samples-0", (*_predict_args(task), "--max_predict_samples", "0"),
                            "--max_predict_samples must be in [1, inf), got 0"))
        else:
            rows.append(Row(f"predict-{task}-missing-model", _predict_args(task),
                            f"--model_name_or_path {MISSING_MODEL}: no such model folder"))
    rows += [
        Row("export-missing-folder", ("-m", "tasks.export", MISSING_MODEL),
            f"{MISSING_MODEL}: no such model folder; give a run's best/ or last/ folder"),
        Row("export-bad-choice", ("-m", "tasks.export", MISSING_MODEL, "--quantize", "int4"),
            "argument --quantize: invalid choice: 'int4'"),
    ]
    rows += [Row(f"app-{task}-missing-model", (f"apps/{task}.py", "--model", MISSING_MODEL),
                 f"--model {MISSING_MODEL}: no such model folder") for task in list_tasks()]
    rows.append(Row("apps-missing-models-dir", ("-m", "apps", "--models_dir", "{tmp}/missing"),
                    "no model under {tmp}/missing/<task>/<run>/best could be served"))
    return rows


ROWS = {row.id: row for row in _rows()}


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "CUDA_VISIBLE_DEVICES": "", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(ROOT)}


def _call(row: Row, tmp: Path) -> tuple[subprocess.CompletedProcess | None, float]:
    started = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, *(a.format(tmp=tmp) for a in row.argv)], cwd=ROOT, env=_env(),
                                capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        result = None
    return result, time.perf_counter() - started


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("cli_errors")
    (tmp / "recipes").mkdir()
    for task, (flag, value, _) in TRAIN.items():
        if flag == "recipe":
            (tmp / "recipes" / f"{task}.yaml").write_text(value + "\n")
    return tmp


@pytest.fixture(scope="module")
def results(request, scratch):
    """Every selected row's subprocess, run WORKERS at a time when the first test of the file asks."""
    selected = [item.callspec.params["row_id"] for item in request.session.items
                if item.module is request.module and "row_id" in getattr(getattr(item, "callspec", None), "params", {})]
    pool = ThreadPoolExecutor(WORKERS)
    futures = {row_id: pool.submit(_call, ROWS[row_id], scratch) for row_id in dict.fromkeys(selected)}
    yield futures
    pool.shutdown(wait=True)


def test_every_entry_point_has_rows():
    entries = {row.argv[0] if row.argv[0] != "-m" else row.argv[1] for row in ROWS.values()}
    tasks = list_tasks()
    expected = {*(f"tasks/{t}/train.py" for t in tasks), *(f"tasks/{t}/predict.py" for t in tasks),
                *(f"apps/{t}.py" for t in tasks), "tasks.export", "apps"}
    assert entries == expected and len(tasks) == 7
    assert {p.relative_to(ROOT).as_posix() for p in ROOT.glob("tasks/*/train.py")} <= entries
    assert {p.relative_to(ROOT).as_posix() for p in ROOT.glob("tasks/*/predict.py")} <= entries
    assert {p.relative_to(ROOT).as_posix() for p in ROOT.glob("apps/*.py") if p.stem[0] != "_"} <= entries


@pytest.mark.parametrize("row_id", list(ROWS))
def test_a_malformed_input_exits_2_with_one_error_line_and_no_traceback(row_id, results, scratch):
    row = ROWS[row_id]
    result, seconds = results[row_id].result()
    assert result is not None, f"{row_id}: still running after {TIMEOUT} s (waiting for something on bad input?)"
    stderr = result.stderr
    assert "Traceback" not in stderr and "Traceback" not in result.stdout, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, f"exit {result.returncode} after {seconds:.1f} s:\n{stderr[-3000:]}"
    assert len(errors) == 1, stderr[-3000:]
    assert row.expect.format(tmp=scratch) in errors[0], errors[0]
    assert not list((scratch / "runs").glob("*/config.yaml")), "a refused run left a run folder"


# ------------------------------------------------------------------ in-process: the export's other refusals
@pytest.mark.parametrize("argv, expect", [
    (["{tmp}/recipes"], "{tmp}/recipes: no model card naming the task; pass --task"),
    (["{tmp}/recipes", "--task", "nope"], "--task 'nope' is not a task here; known: image_classification, "),
    (["{tmp}/recipes", "--max_eval_samples", "many"], "argument --max_eval_samples: invalid int value: 'many'"),
])
def test_export_refuses_a_folder_it_cannot_export_in_one_line(argv, expect, scratch, capsys):
    from shared.serving.export import main

    with pytest.raises(SystemExit) as stop:
        main([a.format(tmp=scratch) for a in argv])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and [line for line in err.splitlines() if line.startswith("error: ")] == [err.strip()]
    assert expect.format(tmp=scratch) in err, err
