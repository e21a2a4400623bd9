"""transformers.Trainer on the same model, data and settings as our text-classification recipe."""
from __future__ import annotations

import math

import numpy as np
import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments)

from benchmarks.baselines.common import EvalClock, baseline_parser, write_trainer_results
from shared.toolkit.config import parse_config
from shared.evaluation.scoring import load_metric
from shared.toolkit.models import resolve_model
from shared.task import get_task


def main() -> None:
    args, overrides = baseline_parser().parse_known_args()
    import tasks  # noqa: F401
    task_class = get_task("text_classification")
    cfg = parse_config(task_class.config_class, ["--config", args.recipe, *overrides])
    data = task_class(cfg).load_data()  # the same files, validation and label encoding as our run
    labels = data.labels
    path = resolve_model(cfg.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    tokenize = lambda b: tokenizer(b["text"], truncation=True, max_length=cfg.max_seq_length)
    encoded = data.splits.map(tokenize, batched=True, remove_columns=["text"])
    steps = math.ceil(len(encoded["train"]) / cfg.per_device_train_batch_size) * cfg.num_train_epochs
    metric = load_metric("classification")

    def compute_metrics(prediction):
        probabilities = torch.tensor(prediction.predictions).float().softmax(-1).numpy()
        return metric.compute(predictions=probabilities, references=np.asarray(prediction.label_ids))

    training_args = TrainingArguments(
        output_dir=args.output_dir, per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs, weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps or math.ceil(cfg.warmup_ratio * steps), lr_scheduler_type="linear",
        eval_strategy="epoch" if args.per_epoch_eval else "no", save_strategy="no", logging_steps=cfg.logging_steps,
        seed=cfg.seed, bf16=args.bf16, use_cpu=not torch.cuda.is_available(), report_to="none",
        max_grad_norm=cfg.max_grad_norm, dataloader_num_workers=cfg.dataloader_num_workers)
    trainer = Trainer(model=model, args=training_args, train_dataset=encoded["train"],
                      eval_dataset=encoded["validation"], data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=compute_metrics, callbacks=[clock := EvalClock()])
    train_output = trainer.train()
    final = trainer.evaluate()  # the last weights, as our side reports them
    write_trainer_results(args.output_dir, train_output, {k: final[f"eval_{k}"] for k in ("accuracy", "f1")}, clock,
                          eval_samples_per_second=final["eval_samples_per_second"])


if __name__ == "__main__":
    main()
