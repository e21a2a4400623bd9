"""Command-line entry for a registered task: parse a task's config, run the engine, exit non-zero with one clear line on bad input."""
from __future__ import annotations

import sys

from shared.config import ConfigError, parse_config
from shared.data import DataError
from shared.task import get_task


def main(task_name: str, args: list[str] | None = None) -> dict:
    from shared.engine import TrainingDiverged, run

    task = get_task(task_name)
    try:
        cfg = parse_config(task.config_class, args)
        if cfg.hpo_trials:
            from shared.tune import tune  # optuna is the [tune] extra: imported only here

            return tune(task, cfg)
        return run(task, cfg)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except TrainingDiverged as err:  # exit 3: the input was fine, the optimisation was not
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(3) from None
