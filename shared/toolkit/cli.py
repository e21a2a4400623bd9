"""Command-line entry for a registered task: parse a task's config, run the engine, exit non-zero with one clear line on bad input."""
from __future__ import annotations

import argparse
import sys

from shared.toolkit.config import ConfigError, check_ranges, parse_config
from shared.inputs.data import DataError
from shared.toolkit.extras import check_trackers, require
from shared.task import get_task


def main(task_name: str, args: list[str] | None = None) -> dict:
    from shared.training.engine import TrainingDiverged, run

    task_class = get_task(task_name)
    try:
        cfg = parse_config(task_class.config_class, args)
        check_trackers(cfg.report_to)
        task = task_class(cfg)
        if cfg.hpo_trials:
            require("optuna", "tune", "--hpo_trials")
            from shared.training.tune import tune  # optuna is the [tune] extra: imported only here

            return tune(task)
        return run(task)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except TrainingDiverged as err:  # exit 3: the input was fine, the optimisation was not
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(3) from None


def predict_main(task_name: str, predictions, args: list[str] | None = None) -> dict:
    """`tasks/<task>/predict.py`: the task's config flags plus its prediction options, then shared.serving.predict."""
    from shared.serving.predict import parse_predict_args, predict

    task_class = get_task(task_name)
    try:
        cfg, opts = parse_predict_args(task_class, predictions, args)
        check_ranges(opts)  # the prediction options too: finite, and within a declared range
        return predict(task_class(cfg), predictions, cfg, opts)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


class EntryParser(argparse.ArgumentParser):
    """argparse for the entry points without a task config (export, the demos): a bad flag is one `error: ...`
    line and exit 2, as in train.py and predict.py, instead of argparse's usage dump."""

    def error(self, message: str):
        print(f"error: {message}; see --help", file=sys.stderr)
        raise SystemExit(2)


def exit_2_on_refusal(entry, *args) -> None:
    """Run an entry point that refuses input with SystemExit("error: ...") (exit 1, the demos): the same message,
    and exit 2 like every other entry point's refused input."""
    try:
        entry(*args)
    except SystemExit as stop:
        if not isinstance(stop.code, str):
            raise
        print(stop.code, file=sys.stderr)
        raise SystemExit(2) from None
