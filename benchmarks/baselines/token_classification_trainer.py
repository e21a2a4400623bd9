"""transformers.Trainer on the same model, data and settings as our token-classification recipe, as the
transformers `run_ner` example does it: first sub-token labelled, sentences truncated at max_seq_length."""
from __future__ import annotations

import time

import numpy as np
from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification, Trainer

from benchmarks.baselines.common import baseline_parser, scored_at_end_arguments, write_trainer_results
from shared.toolkit.config import parse_config
from shared.evaluation.scoring import load_metric
from shared.toolkit.models import resolve_model
from shared.task import get_task


def first_sub_token_labels(tokenizer, max_length: int):
    """run_ner's alignment: the first sub-token of each word carries its tag, the rest and specials -100."""

    def tokenize(batch):
        encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        labels = []
        for row, tags in enumerate(batch["label"]):
            previous, row_labels = None, []
            for word in encoded.word_ids(row):
                row_labels.append(-100 if word is None or word == previous else tags[word])
                previous = word
            labels.append(row_labels)
        encoded["labels"] = labels
        return encoded

    return tokenize


def word_tags(predictions: np.ndarray, encoded, dataset, names: list[str]) -> list[list[str]]:
    """One tag per word from its first sub-token; words the truncation cut off are scored as O (missed)."""
    out = []
    for row, (logits, tokens) in enumerate(zip(predictions, dataset["tokens"])):
        tags, previous = ["O"] * len(tokens), None
        for position, word in enumerate(encoded.word_ids(row)):
            if word is not None and word != previous:
                tags[word] = names[int(logits[position].argmax())]
            previous = word
        out.append(tags)
    return out


def main() -> None:
    args, overrides = baseline_parser().parse_known_args()  # evaluates once, after training
    import tasks  # noqa: F401

    task_class = get_task("token_classification")
    cfg = parse_config(task_class.config_class, ["--config", args.recipe, *overrides])
    task = task_class(cfg)
    data = task.load_data()  # the same files, tag conversion and label set as our run
    names = data.labels
    tokenizer = task.build_processor(data)
    model = AutoModelForTokenClassification.from_pretrained(
        resolve_model(cfg.model_name_or_path), num_labels=len(names), id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)})
    tokenize = first_sub_token_labels(tokenizer, cfg.max_seq_length)
    train = data["train"].map(tokenize, batched=True, remove_columns=data["train"].column_names)
    validation = data["validation"].map(tokenize, batched=True, remove_columns=data["validation"].column_names)
    training_args = scored_at_end_arguments(cfg, args, len(train))
    trainer = Trainer(model=model, args=training_args, train_dataset=train,
                      data_collator=DataCollatorForTokenClassification(tokenizer))
    train_output = trainer.train()
    eval_started = time.perf_counter()
    output = trainer.predict(validation)  # logits padded to one width; word_ids say which positions are real
    encoded = tokenizer(list(data["validation"]["tokens"]), is_split_into_words=True, truncation=True,
                        max_length=cfg.max_seq_length)
    predictions = word_tags(output.predictions, encoded, data["validation"], names)
    references = [[names[i] for i in row] for row in data["validation"]["label"]]
    scores = load_metric("seqeval").compute(predictions=predictions, references=references)
    eval_seconds = time.perf_counter() - eval_started  # prediction and word alignment, as ours
    final = {k: scores[k] for k in ("f1", "precision", "recall", "accuracy")}
    write_trainer_results(args.output_dir, train_output, final, per_type=scores["per_type"],
                          eval_samples_per_second=len(references) / eval_seconds,
                          eval_history=[{"time_s": train_output.metrics["train_runtime"] + eval_seconds,
                                         "eval_f1": scores["f1"]}])


if __name__ == "__main__":
    main()
