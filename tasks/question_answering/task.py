"""Extractive question answering hooks: SQuAD-style data, strided windows, n-best span decoding."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding

from shared.toolkit.config import ConfigError, TrainConfig
from shared.inputs.data import load_hub_or_files
from shared.inputs.splits import ensure_validation, limit_samples
from shared.evaluation.scoring import load_metric
from shared.toolkit.models import resolve_model
from shared.task import DemoSpec, MetricSpec, Task, TaskData, register_task
from tasks.question_answering.data import FEATURES, from_hub_split, load_split
from tasks.question_answering.pipeline import TAG
from tasks.question_answering.sample_data import make_rows
from tasks.question_answering.spans import answer_positions, best_answers, context_offsets, tokenize_windows

EXTRAS = ("example_index", "offset_mapping")  # eval-only batch entries that are not model inputs


@dataclass
class QuestionAnsweringConfig(TrainConfig):
    model_name_or_path: str = field(default="minilm", metadata={"help": "Hub id, local dir, or 'minilm' (packaged)."})
    per_device_train_batch_size: int = 16
    group_by_length: bool = True  # similar lengths per batch: dynamic padding then wastes little
    max_seq_length: int = field(default=384, metadata={"help": "Tokens per window (question + context).",
                                                       "range": "[1, inf)"})
    doc_stride: int = field(default=128, metadata={"help": "Tokens shared by consecutive windows of a long context; "
                                                           "below max_seq_length / 2.", "range": "[1, inf)"})
    n_best_size: int = field(default=20, metadata={"help": "Start and end candidates kept per window.", "range": "[1, inf)"})
    max_answer_length: int = field(default=30, metadata={"help": "Longest answer, in tokens.", "range": "[1, inf)"})
    version_2_with_negative: bool = field(default=False, metadata={"help": "Some questions have no answer (SQuAD v2)."})
    null_score_diff_threshold: float = field(default=0.0, metadata={
        "help": "v2: answer '' when null score > best + this (a logit difference: any finite number).",
        "range": "(-inf, inf)"})
    skip_bad_answers: bool = field(default=False, metadata={"help": "Drop (and count) rows whose answer is not at "
                                                                     "answer_start, instead of stopping."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.doc_stride < self.max_seq_length // 2:
            raise ConfigError(f"--doc_stride must be in (0, max_seq_length / 2), got {self.doc_stride} "
                              f"with --max_seq_length {self.max_seq_length}")


@register_task("question_answering")
class QuestionAnswering(Task):
    config_class = QuestionAnsweringConfig
    pipeline_tag = TAG
    predictions = "tasks.question_answering.predictions:PREDICTIONS"

    # ------------------------------------------------------------------ data
    def load_data(self) -> TaskData:
        cfg = self.cfg
        allow, skip = cfg.version_2_with_negative, cfg.skip_bad_answers
        if cfg.dataset_name:
            raw, sources = load_hub_or_files(cfg)
            data = DatasetDict({k: from_hub_split(v, sources[k], allow, skip) for k, v in raw.items()})
        elif cfg.train_file:
            data, sources = DatasetDict({"train": load_split(cfg.train_file, allow, skip)}), {"train": cfg.train_file}
            for split, path in (("validation", cfg.validation_file), ("test", cfg.test_file)):
                if path:
                    data[split], sources[split] = load_split(path, allow, skip), path
        else:  # the embedded sample: offline, learnable in a minute or two
            data = DatasetDict({"train": Dataset.from_list(make_rows(600, seed=0), features=FEATURES),
                                "validation": Dataset.from_list(make_rows(150, seed=1), features=FEATURES)})
            sources = {}  # generated in memory: no file to name
        # held-out questions never share a paragraph with training ones: the answer would be one seen in training
        return TaskData(limit_samples(ensure_validation(data, cfg, group_column="context"), cfg), sources=sources)

    def row_key(self, example: dict) -> str:
        """The same question on the same context is one example, whatever its id or answers."""
        return " ".join(f"{example['question']}\x1f{example['context']}".lower().split())

    # ------------------------------------------------------------------ model
    def build_processor(self, data):
        name = self.cfg.model_name_or_path
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(name))
        if not tokenizer.is_fast:
            raise ConfigError(f"{name}: question answering needs a fast tokenizer (offset mapping)")
        return tokenizer

    def build_model(self, labels, processor=None):
        return AutoModelForQuestionAnswering.from_pretrained(resolve_model(self.cfg.model_name_or_path))

    def head_modules(self, model) -> list[str]:
        return ["qa_outputs"]

    # ------------------------------------------------------------------ batches
    def preprocess(self, processor, dataset, split: str, data):
        cfg, train = self.cfg, split == "train"

        def windows(batch, indices):
            encoded = tokenize_windows(processor, batch["question"], batch["context"], cfg.max_seq_length,
                                       cfg.doc_stride)
            owners = encoded.pop("overflow_to_sample_mapping")
            offsets = [context_offsets(encoded, i) for i in range(len(owners))]
            encoded.pop("offset_mapping")
            if not train:
                return {**encoded, "example_index": [indices[o] for o in owners], "offset_mapping": offsets}
            starts, ends = [], []
            for window, owner in enumerate(owners):
                answers = batch["answers"][owner]
                start, end = (answer_positions(offsets[window], answers["answer_start"][0], answers["text"][0])
                              if answers["text"] else (0, 0))  # unanswerable: point at CLS
                starts.append(start)
                ends.append(end)
            return {**encoded, "start_positions": starts, "end_positions": ends}

        return dataset.map(windows, batched=True, with_indices=True, remove_columns=dataset.column_names,
                           num_proc=cfg.preprocessing_num_workers, desc=f"windows of {split}")

    def collate_fn(self, processor):
        pad = DataCollatorWithPadding(processor, pad_to_multiple_of=8)  # few shapes: the allocator reuses blocks

        def collate(rows: list[dict]) -> dict:
            extras = {k: [row.pop(k) for row in rows] for k in EXTRAS if k in rows[0]}
            batch = pad(rows)
            if extras:  # kept beside the tensors so evaluation can map windows back to questions
                batch["example_index"] = torch.tensor(extras["example_index"])
                batch["offset_mapping"] = extras["offset_mapping"]
            return batch

        return collate

    def compute_loss(self, model, batch, loss):
        outputs = model(**{k: v for k, v in batch.items() if k not in EXTRAS})
        return outputs.loss, outputs

    def eval_step(self, model, batch, loss=None):
        outputs = model(**{k: v for k, v in batch.items() if k not in EXTRAS})
        logits = torch.stack([outputs.start_logits, outputs.end_logits], dim=-1).float()
        windows = list(zip(batch["example_index"].tolist(), batch["offset_mapping"]))
        return None, logits, windows

    # ------------------------------------------------------------------ metrics
    def metric(self, labels) -> MetricSpec:
        return MetricSpec(load_metric("squad"), "f1", compute_kwargs={
            "version_2_with_negative": self.cfg.version_2_with_negative})

    def predict_answers(self, batches: list[tuple], dataset) -> dict[str, str]:
        """Question id -> answer text, from the gathered logits of every window."""
        cfg = self.cfg
        windows = defaultdict(list)
        for logits, owners in batches:
            for row, (index, offsets) in zip(logits, owners):
                windows[index].append((row[:, 0], row[:, 1], offsets))
        answers = {}
        for index, example in enumerate(dataset):
            best = best_answers(windows[index], example["context"], cfg.n_best_size, cfg.max_answer_length,
                                cfg.version_2_with_negative, cfg.null_score_diff_threshold)
            answers[example["id"]] = best[0]["answer"]
        return answers

    def compute_metrics(self, spec: MetricSpec, batches: list[tuple], dataset) -> dict:
        answers = self.predict_answers(batches, dataset)
        return spec.module.compute(predictions=[{"id": k, "prediction_text": v} for k, v in answers.items()],
                                   references=[{"id": r["id"], "answers": r["answers"]} for r in dataset],
                                   **spec.compute_kwargs)

    def eval_report(self, out_dir, batches, dataset, labels) -> None:
        # The engine hands reports the run's plots/ folder; predictions belong beside results.json.
        path = Path(out_dir).parent / "predictions.json"
        path.write_text(json.dumps(self.predict_answers(batches, dataset), indent=1, ensure_ascii=False))

    @classmethod
    def demo(cls) -> DemoSpec:
        import gradio as gr

        from tasks.question_answering.demo import examples_from

        def predict(pipe, context: str, question: str):
            answer = pipe(question=question, context=context)
            start, end = answer["start"], answer["end"]
            # the context with the answer span marked, so the reader sees where it came from
            highlighted = [(context[:start], None), (context[start:end], "answer"), (context[end:], None)]
            return highlighted, answer["answer"], round(answer["score"], 4)

        return DemoSpec(pipeline_tag=TAG, predict=predict,
                        inputs=lambda: [gr.Textbox(label="Context", lines=6), gr.Textbox(label="Question")],
                        outputs=lambda: [gr.HighlightedText(label="Answer in the context",
                                                           color_map={"answer": "green"}),
                                         gr.Textbox(label="Answer"), gr.Number(label="Score")],
                        examples=[[row["context"], row["question"]] for row in make_rows(3, seed=7)],
                        examples_from=examples_from)
