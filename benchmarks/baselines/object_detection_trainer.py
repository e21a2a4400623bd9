"""transformers.Trainer on the same detector, images, transforms, batch, optimizer groups and schedule as our recipe.

Evaluation follows transformers' own object-detection example: `eval_do_concat_batches=False`, and boxes decoded by
the image processor's `post_process_object_detection` at the original image sizes, scored by the same metric module.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from transformers import Trainer, TrainingArguments

from benchmarks.baselines.common import EvalClock, baseline_parser, write_trainer_results
from shared.toolkit.config import parse_config
from shared.training.optim import build_optimizer
from shared.run import build_run
from shared.task import get_task


def _metrics_function(task, spec):
    def compute_metrics(evaluation) -> dict:
        for (logits, boxes), targets in zip(evaluation.predictions, evaluation.label_ids):
            labels = [{key: torch.as_tensor(value) for key, value in target.items()} for target in targets]
            outputs = SimpleNamespace(logits=torch.as_tensor(logits), pred_boxes=torch.as_tensor(boxes))
            predictions, references = task.postprocess({"labels": labels}, outputs)
            spec.module.add_batch(predictions=predictions, references=references)
        results = spec.module.compute(**spec.compute_kwargs)
        return {k: v for k, v in results.items() if isinstance(v, float)}

    return compute_metrics


def main() -> None:
    args, overrides = baseline_parser().parse_known_args()
    import tasks  # noqa: F401  (registers the tasks)
    task_class = get_task("object_detection")
    cfg = parse_config(task_class.config_class, ["--config", args.recipe, *overrides])
    task = task_class(cfg)
    torch.manual_seed(cfg.seed)
    # the same folders, checks, label order, processor, model and transforms as our run
    run = build_run(task, splits=("train", "validation"))
    model, train, validation = run.model, run.datasets["train"], run.datasets["validation"]
    # the same optimizer and parameter groups (head at --learning_rate, backbone slower) as our engine builds
    optimizer = build_optimizer(cfg, model, task.lr_overrides(model))
    steps = math.ceil(len(train) / cfg.per_device_train_batch_size) * cfg.num_train_epochs
    training_args = TrainingArguments(
        output_dir=args.output_dir, per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs, warmup_steps=cfg.warmup_steps or math.ceil(cfg.warmup_ratio * steps),
        lr_scheduler_type=cfg.lr_scheduler_type, eval_strategy="epoch" if args.per_epoch_eval else "no", save_strategy="no",
        logging_steps=cfg.logging_steps, seed=cfg.seed, bf16=args.bf16, use_cpu=not torch.cuda.is_available(),
        report_to="none", max_grad_norm=cfg.max_grad_norm, dataloader_num_workers=cfg.dataloader_num_workers,
        remove_unused_columns=False, eval_do_concat_batches=False)
    spec = run.metric
    trainer = Trainer(model=model, args=training_args, data_collator=run.collate,
                      train_dataset=train, eval_dataset=validation, optimizers=(optimizer, None),
                      compute_metrics=_metrics_function(task, spec), callbacks=[clock := EvalClock()])
    output = trainer.train(ignore_keys_for_eval=["loss_dict"])
    if not args.per_epoch_eval:
        trainer.evaluate(ignore_keys=["loss_dict"])  # once, on the last weights
    evals = [row for row in trainer.state.log_history if "eval_map" in row]
    best = max(evals, key=lambda row: row["eval_map"])
    write_trainer_results(args.output_dir, output, {"map": best["eval_map"], "map_50": best["eval_map_50"]}, clock,
                          last_eval_map=evals[-1]["eval_map"], last_eval_map_50=evals[-1]["eval_map_50"],
                          best_eval_map_50=max(row["eval_map_50"] for row in evals),
                          eval_samples_per_second=evals[-1]["eval_samples_per_second"],
                          torch_threads=torch.get_num_threads())


if __name__ == "__main__":
    main()
