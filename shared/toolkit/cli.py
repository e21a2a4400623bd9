"""Command-line entry for a registered task: parse a task's config, run the engine, exit non-zero with one clear line on bad input."""
from __future__ import annotations

import argparse
import functools
import sys
from typing import NoReturn

from shared.toolkit.config import ConfigError, check_ranges, parse_config
from shared.inputs.data import DataError
from shared.toolkit.extras import check_trackers, require
from shared.task import get_task


def refuse(err: Exception | str, code: int = 2) -> NoReturn:
    """How every entry point ends on refused input: one `error: ...` line on stderr, then exit `code` (2: bad input
    or settings; 3: the input was fine, the optimisation diverged)."""
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(code) from None


def entry_point(function):
    """The one refusal path of every command-line entry (train, predict, export, the demos): a ConfigError or
    DataError it raises ends through refuse(), never as a traceback."""
    @functools.wraps(function)
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ConfigError, DataError) as err:
            refuse(err)

    return run


@entry_point
def main(task_name: str, args: list[str] | None = None) -> dict:
    from shared.training.engine import TrainingDiverged, run

    task_class = get_task(task_name)
    cfg = parse_config(task_class.config_class, args)
    check_trackers(cfg.report_to)
    task = task_class(cfg)
    try:
        if cfg.hpo_trials:
            require("optuna", "tune", "--hpo_trials")
            from shared.training.tune import tune  # optuna is the [tune] extra: imported only here

            return tune(task)
        return run(task)
    except TrainingDiverged as err:
        refuse(err, 3)


@entry_point
def predict_main(task_name: str, predictions=None, args: list[str] | None = None) -> dict:
    """`tasks/<task>/predict.py`: the task's config flags plus its prediction options, then shared.serving.predict.
    `predictions`: the format to use, by default the task's own (Task.prediction_format())."""
    from shared.serving.predict import parse_predict_args, predict

    task_class = get_task(task_name)
    fmt = task_class.prediction_format() if predictions is None else predictions
    cfg, opts = parse_predict_args(task_class, fmt, args)
    check_ranges(opts)  # the prediction options too: finite, and within a declared range
    return predict(task_class(cfg), fmt, cfg, opts)


class EntryParser(argparse.ArgumentParser):
    """argparse for the entry points without a task config (export, the demos): a bad flag is one `error: ...`
    line and exit 2, as in train.py and predict.py, instead of argparse's usage dump."""

    def error(self, message: str) -> NoReturn:
        refuse(f"{message}; see --help")
