"""Text classification hooks: single sentences or pairs, string or integer labels, or regression."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from datasets import ClassLabel, DatasetDict, Value
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from shared.toolkit.config import TrainConfig
from shared.inputs.data import DataError, load_hub_or_files, read_label_names, require_columns, row_name
from shared.inputs.splits import ensure_validation, limit_samples
from shared.evaluation.scoring import load_metric
from shared.training.losses import classification_loss
from shared.toolkit.models import resolve_model
from shared.task import DemoSpec, MetricSpec, Task, TaskData, register_task

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"


@dataclass
class TextClassificationConfig(TrainConfig):
    model_name_or_path: str = field(default="minilm", metadata={"help": "Hub id, local dir, or 'minilm' (packaged)."})
    text_column: str = "text"
    text_pair_column: Optional[str] = field(default=None, metadata={"help": "Second sentence column for pair tasks."})
    label_column: str = "label"
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per row (longer texts are cut).", "range": "[1, inf)"})
    problem_type: Literal["auto", "single_label_classification", "regression"] = field(
        default="auto", metadata={"help": "auto: regression when the labels are non-integer numbers."})
    group_by_length: bool = field(default=True, metadata={"help": "Batch similar lengths together (less padding)."})
    metric_for_best_model: Optional[str] = field(default=None, metadata={"help": "Default: accuracy (pearson for regression)."})


@register_task("text_classification")
class TextClassification(Task):
    config_class = TextClassificationConfig
    pipeline_tag = "text-classification"
    predictions = "tasks.text_classification.predictions:PREDICTIONS"

    # ------------------------------------------------------------------ data
    def load_data(self) -> TaskData:
        cfg = self.cfg
        if not cfg.dataset_name and not cfg.train_file:  # the embedded sample: a copy of the config names it
            cfg = dataclasses.replace(cfg, train_file=str(SAMPLE_DIR / "train.csv"),
                                      validation_file=str(SAMPLE_DIR / "validation.csv"))
        data, sources = load_hub_or_files(cfg)
        columns = [cfg.text_column, cfg.label_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
        for split, dataset in data.items():
            require_columns(dataset, columns, sources[split])
            self._check_texts(dataset, cfg, sources[split])
        data = self._encode_labels(data, cfg, sources)
        data = DatasetDict({k: v.rename_column(cfg.label_column, "label") if cfg.label_column != "label" else v
                            for k, v in data.items()})
        data = limit_samples(ensure_validation(data, cfg, stratify_column="label"), cfg)
        return TaskData.from_splits(data, sources=sources)  # regression (float labels): labels None

    @staticmethod
    def _check_texts(dataset, cfg, source: str) -> None:
        for flag, column in (("text_column", cfg.text_column), ("text_pair_column", cfg.text_pair_column)):
            if not column:
                continue
            _check_text_type(dataset.features[column], column, flag, source)
            for index, text in enumerate(dataset[column]):
                if text is None or not str(text).strip():
                    raise DataError(f"{row_name(source, index)}: empty text in column {column!r}")

    def _encode_labels(self, data: DatasetDict, cfg, sources: dict) -> DatasetDict:
        train_feature = data["train"].features[cfg.label_column]
        if isinstance(train_feature, ClassLabel):
            return data
        values = data["train"][cfg.label_column]
        if any(v is None for v in values):
            raise DataError(f"{row_name(sources['train'], values.index(None))}: missing label")
        if self._is_regression(cfg, values):
            return DatasetDict({k: v.cast_column(cfg.label_column, Value("float32")) for k, v in data.items()})
        names, index = self._label_vocabulary(cfg, values)
        if len(set(values)) < 2:
            raise DataError(f"{sources['train']}: column {cfg.label_column!r} has a single class {names}; "
                            "classification needs at least two")
        for split, dataset in data.items():
            for row, value in enumerate(dataset[cfg.label_column]):
                if str(value) not in index:
                    raise DataError(f"{row_name(sources[split], row)}: unknown label {value!r}; "
                                    f"the training labels are {names}")
        encode = lambda batch: {cfg.label_column: [index[str(v)] for v in batch[cfg.label_column]]}

        def features(dataset):
            updated = dataset.features.copy()
            updated[cfg.label_column] = ClassLabel(names=names)
            return updated

        return DatasetDict({k: v.map(encode, batched=True, features=features(v)) for k, v in data.items()})

    @staticmethod
    def _is_regression(cfg, values) -> bool:
        if cfg.problem_type != "auto":
            return cfg.problem_type == "regression"
        return all(isinstance(v, float) for v in values) and any(not float(v).is_integer() for v in values)

    @staticmethod
    def _label_vocabulary(cfg, values) -> tuple[list[str], dict[str, int]]:
        """(label names, raw value -> id). Integer labels 0..K-1 keep their ids and take names from a
        labels.json beside the train file when there is one; other labels are numbered in sorted order."""
        distinct = sorted({str(v) for v in values}, key=_numeric_first)
        if all(_is_int(s) for s in distinct) and int(distinct[0]) >= 0:
            count = int(distinct[-1]) + 1
            named = read_label_names(Path(cfg.train_file).parent / "labels.json") if cfg.train_file else None
            names = named if named and len(named) >= count else [str(i) for i in range(count)]
            return names, {str(i): i for i in range(len(names))}
        return distinct, {name: i for i, name in enumerate(distinct)}

    # ------------------------------------------------------------------ model
    def build_processor(self, data):
        return AutoTokenizer.from_pretrained(resolve_model(self.cfg.model_name_or_path))

    def build_model(self, labels, processor=None):
        path = resolve_model(self.cfg.model_name_or_path)
        if labels is None:  # regression: one output
            return AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=1, problem_type="regression", ignore_mismatched_sizes=True)
        _warn_if_head_changes(path, labels)
        return AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)}, ignore_mismatched_sizes=True)

    def head_modules(self, model) -> list[str]:
        return ["classifier", "score"]

    # ------------------------------------------------------------------ batches
    def preprocess(self, processor, dataset, split: str, data):
        cfg, pair = self.cfg, self.cfg.text_pair_column

        def tokenize(batch):
            texts = (batch[cfg.text_column], batch[pair]) if pair else (batch[cfg.text_column],)
            encoded = processor(*texts, truncation=True, max_length=cfg.max_seq_length)
            encoded["labels"] = batch["label"]
            return encoded

        return dataset.map(tokenize, batched=True, remove_columns=dataset.column_names,
                           num_proc=cfg.preprocessing_num_workers, desc=f"tokenizing {split}")

    def collate_fn(self, processor):
        # Pad to the longest row of each batch, rounded up to a multiple of 8: few distinct shapes let the CPU
        # allocator reuse its blocks (peak RSS 1945 vs 2347 MB on 2,000 Rotten Tomatoes rows, same speed), and
        # GPU tensor cores want multiples of 8.
        return DataCollatorWithPadding(processor, pad_to_multiple_of=8)

    def compute_loss(self, model, batch, loss):
        regression = batch["labels"].is_floating_point()  # float targets: the model's own MSE
        if regression or not loss.is_custom:
            outputs = model(**batch)
            return outputs.loss, outputs
        labels = batch["labels"]
        outputs = model(**{k: v for k, v in batch.items() if k != "labels"})
        return classification_loss(outputs.logits, labels, loss), outputs

    def postprocess(self, batch, outputs):
        logits = outputs.logits.float()
        if logits.shape[-1] == 1:
            return logits.squeeze(-1), batch["labels"].float()
        return logits.softmax(-1), batch["labels"]

    # ------------------------------------------------------------------ metrics
    def metric(self, labels) -> MetricSpec:
        cfg = self.cfg
        if labels is None:  # regression
            main = cfg.metric_for_best_model or "pearson"
            return MetricSpec(load_metric("regression"), main)
        main = cfg.metric_for_best_model or "accuracy"
        return MetricSpec(load_metric("classification"), main)

    # ------------------------------------------------------------------ demo
    @classmethod
    def demo(cls) -> DemoSpec:
        from tasks.text_classification.demo import demo_spec  # gradio is the [demo] extra: imported only here

        return demo_spec()


TEXT_DTYPES = ("string", "large_string", "null")  # null: every cell empty, refused by the empty-text check


def _check_text_type(feature, column: str, flag: str, source: str) -> None:
    """A text column the reader typed as numbers (a CSV column of digits, `"text": 5` in every JSON row) is refused
    rather than cast: it is most often the wrong column, and the reader has already lost what the text was
    ("007" read as 7, an empty cell as NaN), so str() of the values would train on something else."""
    if not isinstance(feature, Value) or feature.dtype in TEXT_DTYPES:
        return
    kind = "true/false" if feature.dtype == "bool" else "a number"
    raise DataError(f"{source}: column {column!r} is not text: every row was read as {kind} ({feature.dtype}); "
                    f"point --{flag} at the column that holds the text, or, to classify such values as text, give "
                    "them as JSON strings in a .jsonl file")


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _numeric_first(text: str) -> tuple:
    """Sort integer labels numerically ("2" before "10"), then string labels alphabetically."""
    return (0, int(text), "") if _is_int(text) else (1, 0, text)


def _warn_if_head_changes(path: str, labels: list[str]) -> None:
    """A fine-tuned checkpoint with another label set gets a new head: say so instead of failing."""
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        return
    old = list((config.id2label or {}).values())
    is_default = all(name.startswith("LABEL_") for name in old)
    if config.architectures and "ForSequenceClassification" in config.architectures[0] and not is_default and old != labels:
        print(f"note: {path} has a classification head for {len(old)} labels {old[:10]}; the data has "
              f"{len(labels)} labels {labels[:10]}: the head is re-initialised and trained from scratch")
