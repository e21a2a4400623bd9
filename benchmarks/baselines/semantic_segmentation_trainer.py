"""transformers.Trainer on the same UperNet + packaged MobileNetV2 and CamVid images as our segmentation recipe.

The issue's reference setting: UperNet (hidden 128, no auxiliary head), batch 4 at 360x480, AdamW, lr 3e-4 with
polynomial decay, fp32, 450 steps; the images go through the saved image processor (resize to 360x480, which
CamVid already has, and normalise), the masks through the same processor, as the transformers docs show.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from transformers import Trainer, TrainingArguments

from benchmarks.baselines.common import EvalClock, baseline_parser, write_trainer_results
from shared.toolkit.config import parse_config
from shared.evaluation.scoring import load_metric
from shared.task import get_task
from tasks.semantic_segmentation.data import IGNORE


def _transformed(dataset, processor, table: torch.Tensor):
    """Images and masks through the image processor; mask values mapped to training ids (11 -> ignored)."""
    def apply(batch):
        maps = [table[torch.from_numpy(np.asarray(m, dtype=np.uint8).astype(np.int64))].numpy() for m in batch["mask"]]
        encoded = processor(images=[i.convert("RGB") for i in batch["image"]], segmentation_maps=maps,
                            return_tensors="pt")
        return {"pixel_values": list(encoded["pixel_values"]), "labels": list(encoded["labels"])}

    return dataset.with_transform(apply)


def main() -> None:
    parser = baseline_parser()
    parser.add_argument("--max_steps", type=int, default=None, help="default: the recipe's max_train_steps")
    args, overrides = parser.parse_known_args()
    import tasks  # noqa: F401  (registers the tasks)
    task_class = get_task("semantic_segmentation")
    cfg = parse_config(task_class.config_class, ["--config", args.recipe, *overrides])
    task = task_class(cfg)
    data = task.load_data()  # the same folders, label ids and checks as our run
    labels = data.labels
    processor = task.build_processor(data)
    # Trainer's plain model, as a user would build it
    model = task_class(dataclasses.replace(cfg, channels_last=False)).build_model(labels)
    metric = load_metric("mean_iou")
    steps = args.max_steps or cfg.max_train_steps
    eval_steps = cfg.eval_steps if args.per_epoch_eval else None  # the recipe's evaluation cadence

    def to_classes(logits, labels):  # upsampled and argmaxed per batch: the documented way to keep eval memory small
        logits = logits[0] if isinstance(logits, tuple) else logits
        size = labels.shape[-2:]
        return torch.nn.functional.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False).argmax(1)

    def compute_metrics(prediction):
        return metric.compute(predictions=list(prediction.predictions.astype(np.int16)),
                              references=list(prediction.label_ids.astype(np.int16)), num_labels=len(labels),
                              ignore_index=IGNORE)

    training_args = TrainingArguments(
        output_dir=args.output_dir, per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size, learning_rate=cfg.learning_rate,
        max_steps=steps, lr_scheduler_type="polynomial", weight_decay=cfg.weight_decay,
        eval_strategy="steps" if eval_steps else "no", eval_steps=eval_steps, save_strategy="no",
        logging_steps=cfg.logging_steps, seed=cfg.seed, bf16=args.bf16, use_cpu=not torch.cuda.is_available(),
        report_to="none", max_grad_norm=cfg.max_grad_norm, remove_unused_columns=False, eval_do_concat_batches=True)
    trainer = Trainer(model=model, args=training_args, compute_metrics=compute_metrics,
                      preprocess_logits_for_metrics=to_classes,
                      train_dataset=_transformed(data["train"], processor, data.table),
                      eval_dataset=_transformed(data["validation"], processor, data.table),
                      callbacks=[clock := EvalClock()])
    train_output = trainer.train()
    final = trainer.evaluate()  # the last weights, as our side reports them
    write_trainer_results(args.output_dir, train_output, final, clock, learning_rate=cfg.learning_rate,
                          torch_threads=torch.get_num_threads(), labels=labels)


if __name__ == "__main__":
    main()
