"""What every Trainer baseline shares: its flags, an evaluation clock, and one result file format."""
from __future__ import annotations

import argparse
import json
import time

from transformers import TrainerCallback


def baseline_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", required=True, help="our task recipe: the one source of both sides' settings")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--per_epoch_eval", action="store_true",
                        help="evaluate at the recipe's cadence (time-to-target); default: once, after training")
    return parser


class EvalClock(TrainerCallback):
    """Records (seconds since training began, step, metrics) at each of Trainer's evaluations."""

    def __init__(self):
        self.started, self.history = time.perf_counter(), []

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.history.append({"time_s": round(time.perf_counter() - self.started, 2), "step": state.global_step,
                             **(metrics or {})})


def write_trainer_results(output_dir: str, train_output, final: dict, clock: EvalClock | None = None,
                          **extra) -> dict:
    """trainer_results.json: final `eval_*` metrics, throughputs, the evaluation history."""
    result = {**{k if k.startswith("eval_") else f"eval_{k}": v for k, v in final.items()},
              "train_runtime": train_output.metrics["train_runtime"],
              "train_samples_per_second": train_output.metrics["train_samples_per_second"],
              "global_step": train_output.global_step, "eval_history": clock.history if clock else [], **extra}
    # a baseline that scores outside Trainer.evaluate passes its own eval_history in `extra`
    with open(f"{output_dir}/trainer_results.json", "w") as handle:
        json.dump(result, handle, indent=1, default=float)
    return result
