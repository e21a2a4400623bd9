"""Question answering prediction format: SQuAD JSON or JSONL in, SQuAD-style predictions.json plus scored JSONL out."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding

from shared.inputs.data import load_table
from shared.serving.predict import Inputs, Predictions
from shared.serving.writers import JsonLinesWriter, JsonMapWriter, Writers
from tasks.question_answering.data import is_squad_json, read_rows, read_squad_json, validated
from tasks.question_answering.spans import best_answers, context_offsets, tokenize_windows

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class AnswerWriter(Writers):
    """predictions.json ({id: answer}, what the SQuAD scorer reads) and <stem>.jsonl (score, character offsets)."""

    def __init__(self, path: str):
        super().__init__(JsonMapWriter(path), JsonLinesWriter(Path(path).with_suffix(".jsonl")))

    def write(self, records: list) -> None:
        answers, lines = self.writers
        answers.write([(r["id"], r["answer"]) for r in records])
        lines.write(records)


class QuestionAnsweringPredictions(Predictions):
    suffixes = (".json",)
    length_column = "context"  # contexts of similar length (characters) per batch: windows padded less

    def labels(self, model_config) -> None:
        return None

    def read(self, task, cfg, opts, labels):
        file = Path(opts.input)
        if is_squad_json(file):
            rows, where = read_squad_json(file)
        else:
            data = load_table(file)
            if "answers" not in data.column_names:  # questions to answer, no references
                data = data.add_column("answers", [None] * len(data))
            rows, where = read_rows(data, str(file))
        labelled = any(row["answers"]["text"] for row in rows)
        # without answers every question is checked as a possibly unanswerable one: only text and ids matter
        allow = cfg.version_2_with_negative or not labelled
        return Inputs(validated(rows, where, allow, cfg.skip_bad_answers, str(file)), labelled)

    def dataset(self, task, cfg, processor, raw, labelled, data):
        return raw.select_columns(["question", "context"])

    def collate(self, task, cfg, processor):
        pad = DataCollatorWithPadding(processor, pad_to_multiple_of=8)

        def collate(rows: list[dict]) -> dict:
            """Every window of a batch of questions, so each question's answer is decided within its batch."""
            contexts = [row["context"] for row in rows]
            encoded = tokenize_windows(processor, [row["question"] for row in rows], contexts, cfg.max_seq_length,
                                       cfg.doc_stride)
            owners = encoded["overflow_to_sample_mapping"]
            offsets = [context_offsets(encoded, i) for i in range(len(owners))]
            windows = [{k: encoded[k][i] for k in INPUTS if k in encoded} for i in range(len(owners))]
            return {**pad(windows), "owners": torch.tensor(owners), "offsets": offsets, "contexts": contexts}

        return collate

    def step(self, task, cfg, model, batch):
        outputs = model(**{k: batch[k] for k in INPUTS if k in batch})
        logits = torch.stack([outputs.start_logits, outputs.end_logits], dim=-1).float().cpu().numpy()
        windows = defaultdict(list)
        for row, owner, offsets in zip(logits, batch["owners"].tolist(), batch["offsets"]):
            windows[owner].append((row[:, 0], row[:, 1], offsets))
        answers = [best_answers(windows[i], context, cfg.n_best_size, cfg.max_answer_length,
                                cfg.version_2_with_negative, cfg.null_score_diff_threshold)[0]
                   for i, context in enumerate(batch["contexts"])]
        answers = [{k: a[k] for k in ("answer", "score", "start", "end")} for a in answers]
        return answers, [0] * len(answers)

    def writer(self, cfg, opts, labels):
        return AnswerWriter(opts.output)

    def records(self, cfg, opts, labels, predictions, rows) -> list[dict]:
        return [{"id": row["id"], "question": row["question"], **answer} for answer, row in zip(predictions, rows)]

    def metrics(self, task, cfg, batches, raw, labels) -> dict:
        """The SQuAD scorer, as the engine calls it, over the decoded answers."""
        spec = task.metric(labels)
        answers = [answer["answer"] for predictions, _ in batches for answer in predictions]
        return spec.module.compute(predictions=[{"id": i, "prediction_text": a} for i, a in zip(raw["id"], answers)],
                                   references=[{"id": r["id"], "answers": r["answers"]} for r in raw],
                                   **spec.compute_kwargs)


PREDICTIONS = QuestionAnsweringPredictions()
