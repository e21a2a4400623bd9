"""Token classification (named entities) hooks: CoNLL / JSONL / hub data, IOB1/IOB2/BIOES, windows, seqeval."""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from datasets import DatasetDict
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification

from shared.toolkit.config import ConfigError, TrainConfig
from shared.inputs.splits import ensure_validation, limit_samples
from shared.evaluation.scoring import load_metric
from shared.training.losses import classification_loss
from shared.toolkit.models import resolve_model
from shared.task import DemoSpec, MetricSpec, Task, TaskData, register_task
from tasks.token_classification import data as reader
from tasks.token_classification.alignment import (IGNORE, continuation_ids, encode_windows, window_predictions,
                                                  word_predictions)

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
EXTRAS = ("example_index", "word_index", "word_margin")  # eval-only batch entries that are not model inputs


@dataclass
class TokenClassificationConfig(TrainConfig):
    model_name_or_path: str = field(default="minilm", metadata={"help": "Hub id, local dir, or 'minilm' (packaged)."})
    learning_rate: float = 1e-4  # the fresh per-token head: 5e-5 left the 600-sentence sample at F1 0.74 after 3 epochs
    warmup_ratio: float = 0.06
    tokens_column: str = field(default="tokens", metadata={"help": "JSONL / hub column holding the words."})
    tags_column: Optional[str] = field(default=None, metadata={"help": "Column of tags; default: tags or ner_tags."})
    max_seq_length: int = field(default=128, metadata={"help": "Sub-tokens per window; longer sentences are split.",
                                                       "range": "[1, inf)"})
    doc_stride: int = field(default=32, metadata={"help": "Sub-tokens shared by consecutive windows of a long sentence; "
                                                          "below max_seq_length / 2.", "range": "[0, inf)"})
    label_all_tokens: bool = field(default=False, metadata={
        "help": "Train every sub-token of a word on its tag (B-X becomes I-X after the first); default: the first only."})
    group_by_length: bool = field(default=True, metadata={"help": "Batch similar lengths together (less padding)."})
    metric_for_best_model: str = field(default="f1", metadata={"help": "Entity micro f1, precision, recall or accuracy."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.doc_stride < self.max_seq_length // 2:
            raise ConfigError(f"--doc_stride must be in [0, max_seq_length / 2), got {self.doc_stride} "
                              f"with --max_seq_length {self.max_seq_length}")


@register_task("token_classification")
class TokenClassification(Task):
    config_class = TokenClassificationConfig
    pipeline_tag = "token-classification"
    predictions = "tasks.token_classification.predictions:PREDICTIONS"
    reference_pad_value = IGNORE

    # ------------------------------------------------------------------ data
    def load_data(self) -> TaskData:
        cfg = self.cfg
        if not cfg.dataset_name and not cfg.train_file:  # the embedded sample: a copy of the config names it
            cfg = dataclasses.replace(cfg, train_file=str(SAMPLE_DIR / "train.conll"),
                                      validation_file=str(SAMPLE_DIR / "validation.conll"))
        splits = self._read(cfg)
        scheme = reader.detect_scheme(splits["train"])
        train, repaired, kinds = reader.to_dataset(splits["train"], scheme, None)
        names = train.features["label"].feature.names
        data, notes = {"train": train}, [f"train {repaired}"] if repaired else []
        for name, split in splits.items():
            if name != "train":
                data[name], count, _ = reader.to_dataset(split, scheme, names)
                notes += [f"{name} {count}"] if count else []
        print(f"tag scheme {scheme} ({splits['train'].source}){', converted to IOB2' if scheme != 'IOB2' else ''}; "
              f"{len(kinds)} entity types: {', '.join(sorted(kinds))}")
        if notes:
            print(f"warning: stray I- tags after O or another type repaired to B-: {', '.join(notes)}")
        data = limit_samples(ensure_validation(DatasetDict(data), cfg), cfg)
        counts = Counter(tag for tags in data["train"]["label"] for tag in tags)
        # tags belong to words, not rows: no per-row class (label_ids) for a weighted sampler
        return TaskData(data, labels=list(names), label_counts=[counts[i] for i in range(len(names))],
                        warnings=_repair_warnings(data), sources={k: v.source for k, v in splits.items()})

    @staticmethod
    def _read(cfg) -> dict:
        if cfg.dataset_name:
            import datasets

            raw = datasets.load_dataset(cfg.dataset_name, cfg.dataset_config_name)
            return {k: reader.from_hub(v, f"{cfg.dataset_name}[{k}]", cfg.tokens_column, cfg.tags_column)
                    for k, v in raw.items() if k in ("train", "validation", "test")}
        files = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
        return {k: reader.read_file(v, cfg.tokens_column, cfg.tags_column) for k, v in files.items() if v}

    def row_key(self, example: dict) -> str:
        return " ".join(example["tokens"]).lower()

    # ------------------------------------------------------------------ model
    def build_processor(self, data):
        path = resolve_model(self.cfg.model_name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        if not tokenizer.is_fast:
            raise ConfigError(f"{self.cfg.model_name_or_path}: token classification needs a fast tokenizer (word ids)")
        positions = getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", None)
        if positions and tokenizer.model_max_length > positions:  # a placeholder: the saved pipeline needs the limit
            tokenizer.model_max_length = positions
        return tokenizer

    def build_model(self, labels, processor=None):
        return AutoModelForTokenClassification.from_pretrained(
            resolve_model(self.cfg.model_name_or_path), num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)}, ignore_mismatched_sizes=True)

    def head_modules(self, model) -> list[str]:
        return ["classifier"]

    # ------------------------------------------------------------------ batches
    def preprocess(self, processor, dataset, split: str, data):
        cfg = self.cfg
        names = dataset.features["label"].feature.names
        continuation = continuation_ids(names)
        train = split == "train"
        length = min(cfg.max_seq_length, processor.model_max_length)  # the model's positions bound a window

        def windows(batch, indices):
            encoded = encode_windows(processor, batch["tokens"], batch["label"], length, cfg.doc_stride,
                                     cfg.label_all_tokens and train, continuation)
            encoded["example_index"] = [indices[i] for i in encoded["example_index"]]  # map batch -> split row
            return {k: v for k, v in encoded.items() if not (train and k in EXTRAS)}

        encoded = dataset.map(windows, batched=True, with_indices=True, remove_columns=dataset.column_names,
                              num_proc=cfg.preprocessing_num_workers, desc=f"windows of {split}")
        _report_windows(split, dataset, encoded, cfg, train)
        return encoded

    def collate_fn(self, processor):
        pad = DataCollatorForTokenClassification(processor, pad_to_multiple_of=8)  # few shapes: allocator reuse

        def collate(rows: list[dict]) -> dict:
            extras = {k: [row.pop(k) for row in rows] for k in EXTRAS if k in rows[0]}
            batch = pad(rows)
            batch.update(extras)  # kept beside the tensors so evaluation maps windows back to words
            return batch

        return collate

    def _inputs(self, batch: dict) -> dict:
        return {k: v for k, v in batch.items() if k not in EXTRAS}

    def teacher_inputs(self, batch: dict) -> dict:
        return {k: v for k, v in self._inputs(batch).items() if k != "labels"}

    def distillation_logits(self, outputs) -> torch.Tensor:
        return outputs.logits.transpose(1, 2)  # classes on dim 1, one distribution per position

    def compute_loss(self, model, batch, loss):
        inputs = self._inputs(batch)
        if not loss.is_custom:
            outputs = model(**inputs)
            return outputs.loss, outputs
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        return classification_loss(outputs.logits.transpose(1, 2), labels, loss), outputs

    def postprocess(self, batch, outputs):
        predicted = outputs.logits.argmax(-1).tolist()
        windows = window_predictions(predicted, batch["example_index"], batch["word_index"], batch["word_margin"])
        return windows, [example for example, _ in windows]

    # ------------------------------------------------------------------ metrics
    def metric(self, labels) -> MetricSpec:
        return MetricSpec(load_metric("seqeval"), self.cfg.metric_for_best_model)

    def word_tags(self, batches: list[tuple], dataset) -> tuple[list[list[str]], list[list[str]], int]:
        """(predicted tags, true tags, words no window scored) per sentence, from gathered eval batches."""
        names = dataset.features["label"].feature.names
        windows = [window for predictions, _ in batches for window in predictions]
        lengths = [len(tokens) for tokens in dataset["tokens"]]
        predicted, unscored = word_predictions(windows, lengths, names.index("O"))
        return ([[names[i] for i in row] for row in predicted],
                [[names[i] for i in row] for row in dataset["label"]], unscored)

    def compute_metrics(self, spec: MetricSpec, batches: list[tuple], dataset) -> dict:
        predictions, references, unscored = self.word_tags(batches, dataset)
        return {**spec.module.compute(predictions=predictions, references=references), "unscored_words": unscored}

    def eval_report(self, out_dir, batches, dataset, labels) -> None:
        from tasks.token_classification.report import write_report

        predictions, references, _ = self.word_tags(batches, dataset)
        write_report(Path(out_dir), dataset["tokens"], references, predictions)

    @classmethod
    def demo(cls) -> DemoSpec:
        from tasks.token_classification.demo import demo_spec  # gradio is the [demo] extra: imported only here

        return demo_spec()


def _repair_warnings(data: DatasetDict) -> list[str]:
    """The data report's findings: per split, how many stray I- tags reading repaired."""
    return [f"{name}: {sum(split['repaired_tags'])} stray I- tags (after O or another type) repaired to B-"
            for name, split in data.items() if sum(split["repaired_tags"])]


def _report_windows(split: str, dataset, encoded, cfg, train: bool) -> None:
    """Say how many sentences were split into windows and, off the training split, how many words no
    sub-token represents (they are scored as O: missed entities count against recall)."""
    extra = len(encoded) - len(dataset)
    if extra:
        print(f"{split}: {extra} extra windows of {cfg.max_seq_length} sub-tokens (stride {cfg.doc_stride}) for "
              "sentences longer than --max_seq_length; every word is still trained and scored")
    if train:
        return
    covered = sum(sum(w != IGNORE for w in row) for row in encoded["word_index"])
    overlap = covered - len(set((e, w) for e, row in zip(encoded["example_index"], encoded["word_index"])
                                for w in row if w != IGNORE))
    missing = sum(len(t) for t in dataset["tokens"]) - (covered - overlap)
    if missing:
        print(f"warning: {split}: {missing} words give no sub-token (characters the tokenizer drops); "
              "they are scored as O")
