"""transformers.Trainer on the same model, windows and settings as our question-answering recipe,
with the standard n-best span postprocessing (the same algorithm as the transformers QA example)."""
from __future__ import annotations

import time
from collections import defaultdict

from transformers import DataCollatorWithPadding, Trainer

from benchmarks.baselines.common import baseline_parser, scored_at_end_arguments, write_trainer_results
from shared.toolkit.config import parse_config
from shared.evaluation.scoring import load_metric
from shared.run import build_run
from shared.task import get_task


def main() -> None:
    args, overrides = baseline_parser().parse_known_args()  # evaluates once, after training
    import tasks  # noqa: F401
    from tasks.question_answering.spans import best_answers

    task_class = get_task("question_answering")
    cfg = parse_config(task_class.config_class, ["--config", args.recipe, *overrides])
    # the same files, validation, model (AutoModelForQuestionAnswering) and strided windows and labels as our run
    run = build_run(task_class(cfg), splits=("train", "validation"))
    data, tokenizer, model = run.data, run.processor, run.model
    train, features = run.datasets["train"], run.datasets["validation"]
    training_args = scored_at_end_arguments(cfg, args, len(train))
    trainer = Trainer(model=model, args=training_args, train_dataset=train,
                      data_collator=DataCollatorWithPadding(tokenizer))
    train_output = trainer.train()
    eval_started = time.perf_counter()
    # Trainer pads the logits of every batch to one width; the offsets say which positions are real.
    output = trainer.predict(features.remove_columns(["example_index", "offset_mapping"]))
    start_logits, end_logits = output.predictions
    windows = defaultdict(list)
    for start, end, index, offsets in zip(start_logits, end_logits, features["example_index"], features["offset_mapping"]):
        windows[index].append((start, end, [tuple(o) if o is not None else None for o in offsets]))
    predictions, references = [], []
    for index, example in enumerate(data["validation"]):
        answer = best_answers(windows[index], example["context"], cfg.n_best_size, cfg.max_answer_length,
                              cfg.version_2_with_negative, cfg.null_score_diff_threshold)[0]["answer"]
        predictions.append({"id": example["id"], "prediction_text": answer})
        references.append({"id": example["id"], "answers": example["answers"]})
    scores = load_metric("squad").compute(predictions=predictions, references=references,
                                          version_2_with_negative=cfg.version_2_with_negative)
    eval_seconds = time.perf_counter() - eval_started  # prediction and span post-processing, as ours
    write_trainer_results(args.output_dir, train_output, {"exact_match": scores["exact_match"], "f1": scores["f1"]},
                          eval_samples_per_second=len(data["validation"]) / eval_seconds,
                          eval_history=[{"time_s": train_output.metrics["train_runtime"] + eval_seconds,
                                         "eval_f1": scores["f1"]}])


if __name__ == "__main__":
    main()
