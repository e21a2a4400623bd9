"""transformers.Trainer on the same model, images and settings as our image-classification recipe."""
from __future__ import annotations

import math

import numpy as np
import torch
from transformers import AutoImageProcessor, AutoModelForImageClassification, Trainer, TrainingArguments

from benchmarks.baselines.common import EvalClock, baseline_parser, write_trainer_results
from shared.toolkit.config import parse_config
from shared.evaluation.scoring import load_metric
from shared.toolkit.models import resolve_model
from shared.task import get_task


def _model_and_data(task, pipeline: str):
    """(model, train, validation, collate) the Trainer side trains with."""
    data = task.load_data()  # the same folders, label ids and image checks as our run
    labels = data.labels
    path = resolve_model(task.cfg.model_name_or_path)
    processor = AutoImageProcessor.from_pretrained(path)
    if pipeline == "suite":  # our model build (channels-last), transforms and collate
        train, validation = (task.preprocess(processor, data[s], s, data) for s in ("train", "validation"))
        return task.build_model(labels), train, validation, task.collate_fn(processor)
    model = AutoModelForImageClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
        ignore_mismatched_sizes=True)

    # The documented way to train a timm model through transformers: the processor's own timm transforms
    # (random resized crop, flip, colour jitter for training; resize and centre crop for evaluation).
    def transformed(dataset, transform):
        apply = lambda b: {"pixel_values": [transform(i.convert("RGB")) for i in b["image"]], "labels": b["label"]}
        return dataset.with_transform(apply)

    collate = lambda rows: {"pixel_values": torch.stack([r["pixel_values"] for r in rows]),
                            "labels": torch.tensor([r["labels"] for r in rows])}
    return (model, transformed(data["train"], processor.train_transforms),
            transformed(data["validation"], processor.val_transforms), collate)


def _training_args(cfg, args, train_size: int) -> TrainingArguments:
    """Our recipe's batch, epochs, warmup, schedule, decay, clipping and seed, in Trainer's terms."""
    steps = math.ceil(train_size / cfg.per_device_train_batch_size) * cfg.num_train_epochs
    return TrainingArguments(
        output_dir=args.output_dir, per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        learning_rate=args.trainer_learning_rate or cfg.learning_rate, num_train_epochs=cfg.num_train_epochs,
        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps or math.ceil(cfg.warmup_ratio * steps),
        lr_scheduler_type="linear", eval_strategy="epoch" if args.per_epoch_eval else "no", save_strategy="no", logging_steps=cfg.logging_steps,
        seed=cfg.seed, bf16=args.bf16, use_cpu=not torch.cuda.is_available(), report_to="none",
        max_grad_norm=cfg.max_grad_norm, dataloader_num_workers=cfg.dataloader_num_workers,
        remove_unused_columns=False)


def main() -> None:
    parser = baseline_parser()
    parser.add_argument("--trainer_learning_rate", type=float, default=None,
                        help="Trainer has one rate for every parameter; default: the recipe's --learning_rate")
    parser.add_argument("--pipeline", choices=["timm", "suite"], default="timm",
                        help="timm: the processor's own timm transforms (the documented way); suite: our task's "
                             "model build, transforms and collate, to separate the loop from the input pipeline")
    args, overrides = parser.parse_known_args()
    import tasks  # noqa: F401  (registers the tasks)
    task_class = get_task("image_classification")
    cfg = parse_config(task_class.config_class, ["--config", args.recipe, *overrides])
    task = task_class(cfg)
    model, train, validation, collate = _model_and_data(task, args.pipeline)
    metric = load_metric("classification")

    def compute_metrics(prediction):
        probabilities = torch.tensor(prediction.predictions).float().softmax(-1).numpy()
        return metric.compute(predictions=probabilities, references=np.asarray(prediction.label_ids))

    training_args = _training_args(cfg, args, len(train))
    trainer = Trainer(model=model, args=training_args, data_collator=collate, compute_metrics=compute_metrics,
                      train_dataset=train, eval_dataset=validation, callbacks=[clock := EvalClock()])
    train_output = trainer.train()
    final = trainer.evaluate() if not args.per_epoch_eval else None  # per-epoch runs end with an evaluation
    evals = [row for row in trainer.state.log_history if "eval_accuracy" in row]
    best = max(evals, key=lambda row: row["eval_accuracy"])
    write_trainer_results(args.output_dir, train_output, {"accuracy": best["eval_accuracy"], "f1": best["eval_f1"]},
                          clock, last_eval_accuracy=evals[-1]["eval_accuracy"], last_eval_f1=evals[-1]["eval_f1"],
                          eval_samples_per_second=(final or evals[-1])["eval_samples_per_second"],
                          learning_rate=training_args.learning_rate, torch_threads=torch.get_num_threads(),
                          pipeline=args.pipeline)


if __name__ == "__main__":
    main()
