"""Token classification prediction format: CoNLL or JSONL in (tagged or not), CoNLL or JSONL out with entities."""
from __future__ import annotations

from pathlib import Path

import datasets

from shared.inputs.data import DataError
from shared.serving.predict import Inputs, Predictions
from shared.serving.writers import JsonLinesWriter, Writer
from tasks.token_classification import data as reader
from tasks.token_classification.alignment import encode_windows, entities, window_predictions, \
    word_predictions

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class ConllWriter(Writer):
    """word, predicted tag (and the true tag first when the input had tags: conlleval's columns); blank lines
    between sentences."""

    def write(self, records: list) -> None:
        for record in records:
            true = record.get("true_tags")
            columns = zip(record["tokens"], true, record["tags"]) if true else zip(record["tokens"], record["tags"])
            self.handle.writelines("\t".join(values) + "\n" for values in columns)
            self.handle.write("\n")


class TokenClassificationPredictions(Predictions):
    suffixes = (".conll", ".txt", ".jsonl")
    length_column = "tokens"  # sentences of similar word counts per batch: fewer padded windows

    def read(self, task, cfg, opts, labels):
        words = reader.read_words(opts.input, cfg.tokens_column)
        if words is not None:  # untagged: every word gets O as a placeholder reference
            if not words:
                raise DataError(f"{opts.input}: empty file (no sentences)")
            return Inputs(_as_dataset(words, [[0] * len(w) for w in words], labels), False)
        split = reader.read_file(opts.input, cfg.tokens_column, cfg.tags_column)
        dataset, _, _ = reader.to_dataset(split, reader.detect_scheme(split), labels)  # the model's tag set
        return Inputs(dataset.add_column("tagged", [True] * len(dataset)), True)

    def dataset(self, task, cfg, processor, raw, labelled, data):
        return raw.select_columns(["tokens"])

    def collate(self, task, cfg, processor):
        length = min(cfg.max_seq_length, processor.model_max_length)

        def collate(rows: list[dict]) -> dict:
            """Every window of a batch of sentences, so each word's tag is decided within its batch."""
            words = [row["tokens"] for row in rows]
            encoded = encode_windows(processor, words, [[0] * len(w) for w in words], length, cfg.doc_stride,
                                     False, [0])
            windows = [{k: encoded[k][i] for k in INPUTS if k in encoded} for i in range(len(encoded["input_ids"]))]
            batch = processor.pad(windows, return_tensors="pt", pad_to_multiple_of=8)
            return {**batch, "example_index": encoded["example_index"], "word_index": encoded["word_index"],
                    "word_margin": encoded["word_margin"], "lengths": [len(w) for w in words]}

        return collate

    def step(self, task, cfg, model, batch):
        logits = model(**{k: batch[k] for k in INPUTS if k in batch}).logits.float()
        probabilities, predicted = logits.softmax(-1).max(-1)
        windows = window_predictions(predicted.tolist(), batch["example_index"], batch["word_index"],
                                     batch["word_margin"])
        tags, _ = word_predictions(windows, batch["lengths"], outside_id=model.config.label2id.get("O", 0))
        scores = _word_scores(probabilities.tolist(), batch)
        return [{"tags": t, "scores": s} for t, s in zip(tags, scores)], [0] * len(tags)

    def writer(self, cfg, opts, labels):
        return JsonLinesWriter(opts.output) if Path(opts.output).suffix.lower() == ".jsonl" else ConllWriter(opts.output)

    def records(self, cfg, opts, labels, predictions, rows) -> list[dict]:
        out = []
        for prediction, row in zip(predictions, rows):
            tags = [labels[i] for i in prediction["tags"]]
            record = {"tokens": row["tokens"], "tags": tags, "scores": [round(s, 4) for s in prediction["scores"]],
                      "entities": [{"type": kind, "start": start, "end": end + 1,
                                    "text": " ".join(row["tokens"][start:end + 1])}
                                   for kind, start, end in sorted(entities(tags), key=lambda e: e[1])]}
            if row["tagged"]:  # the input's tags, beside the predictions (conlleval's three columns)
                record["true_tags"] = [labels[i] for i in row["label"]]
            out.append(record)
        return out

    def metrics(self, task, cfg, batches, raw, labels) -> dict:
        names = raw.features["label"].feature.names
        predictions = [[names[i] for i in p["tags"]] for batch, _ in batches for p in batch]
        references = [[names[i] for i in row] for row in raw["label"]]
        return task.metric(labels).module.compute(predictions=predictions, references=references)


def _word_scores(probabilities: list[list[float]], batch: dict) -> list[list[float]]:
    """The probability of each word's predicted tag, from the window that decided it."""
    windows = window_predictions(probabilities, batch["example_index"], batch["word_index"], batch["word_margin"])
    best = {}
    for example, words in windows:
        for word, score, margin in words:
            if (example, word) not in best or margin > best[(example, word)][0]:
                best[(example, word)] = (margin, score)
    return [[best.get((e, w), (0, 0.0))[1] for w in range(n)] for e, n in enumerate(batch["lengths"])]


def _as_dataset(words: list[list[str]], tags: list[list[int]], labels: list[str]) -> datasets.Dataset:
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "label": datasets.Sequence(datasets.ClassLabel(names=labels)),
                                  "tagged": datasets.Value("bool")})
    return datasets.Dataset.from_dict({"tokens": words, "label": tags, "tagged": [False] * len(words)},
                                      features=features)


PREDICTIONS = TokenClassificationPredictions()
