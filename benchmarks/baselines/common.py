"""What every Trainer baseline shares: its flags, an evaluation clock, and one result file format."""
from __future__ import annotations

import argparse
import json
import math
import time

import torch
from transformers import TrainerCallback, TrainingArguments


def baseline_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", required=True, help="our task recipe: the one source of both sides' settings")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--per_epoch_eval", action="store_true",
                        help="evaluate at the recipe's cadence (time-to-target); default: once, after training")
    return parser


def scored_at_end_arguments(cfg, args, train_rows: int) -> TrainingArguments:
    """Trainer's settings from our recipe for a baseline that scores once, after training, outside Trainer:
    the same batch, rate, epochs, decay, warmup (the recipe's ratio turned into steps) and linear schedule."""
    steps = math.ceil(train_rows / cfg.per_device_train_batch_size) * cfg.num_train_epochs
    return TrainingArguments(
        output_dir=args.output_dir, per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs, weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps or math.ceil(cfg.warmup_ratio * steps), lr_scheduler_type="linear",
        eval_strategy="no", save_strategy="no", logging_steps=cfg.logging_steps, seed=cfg.seed, bf16=args.bf16,
        use_cpu=not torch.cuda.is_available(), report_to="none", max_grad_norm=cfg.max_grad_norm)


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
