"""Seq2SeqTrainer on the same model, tokenizer, data and settings as our translation recipe."""
from __future__ import annotations

import math
import time

import torch
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, set_seed

from benchmarks.baselines.common import baseline_parser, write_trainer_results
from shared.toolkit.config import parse_config
from shared.evaluation.scoring import load_metric
from shared.run import build_run
from shared.task import get_task


def main() -> None:
    args, overrides = baseline_parser().parse_known_args()  # evaluates once, after training
    import tasks  # noqa: F401
    from tasks.translation.task import INDEX

    task_class = get_task("translation")
    cfg = parse_config(task_class.config_class, ["--config", args.recipe, *overrides])
    set_seed(cfg.seed)  # reading the data and the tokenizer draw no random numbers: the model starts as ours
    # the same pairs and validation as our run; marian-scratch: the same cached BPE tokenizer, the same model
    run = build_run(task_class(cfg), splits=("train", "validation"))
    data, tokenizer, model = run.data, run.processor, run.model
    train, valid = (run.datasets[split].remove_columns([INDEX]) for split in ("train", "validation"))
    steps = math.ceil(len(train) / cfg.per_device_train_batch_size) * cfg.num_train_epochs
    training_args = Seq2SeqTrainingArguments(
        output_dir=args.output_dir, per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs, weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps or math.ceil(cfg.warmup_ratio * steps), lr_scheduler_type="linear",
        label_smoothing_factor=cfg.label_smoothing, predict_with_generate=True,
        generation_num_beams=cfg.num_beams, generation_max_length=cfg.generation_length(),
        eval_strategy="no", save_strategy="no", logging_steps=cfg.logging_steps, seed=cfg.seed, bf16=args.bf16,
        use_cpu=not torch.cuda.is_available(), report_to="none", max_grad_norm=cfg.max_grad_norm)
    trainer = Seq2SeqTrainer(model=model, args=training_args, train_dataset=train,
                             # model= adds decoder_input_ids: Trainer's label smoother pops the labels
                             data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100))
    train_output = trainer.train()
    eval_started = time.perf_counter()
    output = trainer.predict(valid)
    ids = output.predictions
    ids[ids < 0] = tokenizer.pad_token_id  # Trainer pads generated ids across batches with -100
    predictions = [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    references = [[t] for t in data["validation"]["target"]]
    bleu = load_metric("sacrebleu").compute(predictions=predictions, references=references)
    chrf = load_metric("chrf").compute(predictions=predictions, references=references)
    eval_seconds = time.perf_counter() - eval_started  # generation and scoring, as ours
    write_trainer_results(args.output_dir, train_output, {"bleu": bleu["bleu"], "chrf": chrf["chrf"]},
                          eval_samples_per_second=len(valid) / eval_seconds, predict_seconds=eval_seconds,
                          eval_history=[{"time_s": train_output.metrics["train_runtime"] + eval_seconds,
                                         "eval_bleu": bleu["bleu"]}])


if __name__ == "__main__":
    main()
