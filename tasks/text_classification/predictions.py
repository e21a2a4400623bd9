"""Text classification prediction format: the training table formats in, CSV or JSONL out with every label's score."""
from __future__ import annotations

from pathlib import Path

from shared.inputs.data import DataError, load_table, require_columns, row_name
from shared.serving.predict import Inputs, Predictions
from shared.serving.writers import CsvWriter, JsonLinesWriter
from tasks.text_classification.task import TextClassification


class TextClassificationPredictions(Predictions):
    suffixes = (".csv", ".jsonl")
    length_column = "input_ids"  # similar lengths per batch, less padding; written back in input order

    def labels(self, model_config) -> list[str] | None:
        if model_config.problem_type == "regression" or model_config.num_labels == 1:
            return None  # one score per text
        return super().labels(model_config)

    def read(self, task, cfg, opts, labels):
        source = str(opts.input)
        data = load_table(opts.input)
        texts = [cfg.text_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
        require_columns(data, texts, source)
        TextClassification._check_texts(data, cfg, source)
        labelled = cfg.label_column in data.column_names
        if not labelled:
            return Inputs(data.add_column("label", [0.0 if labels is None else 0] * len(data)), False)
        index = {name: i for i, name in enumerate(labels or [])}
        ids = [_label_id(v, index, labels, row_name(source, r)) for r, v in enumerate(data[cfg.label_column])]
        return Inputs(data.remove_columns([c for c in {cfg.label_column, "label"} if c in data.column_names]
                                          ).add_column("label", ids), True)

    def writer(self, cfg, opts, labels):
        if Path(opts.output).suffix.lower() == ".jsonl":
            return JsonLinesWriter(opts.output)
        texts = [cfg.text_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
        scores = ["score"] if labels is None else [f"score_{name}" for name in labels]
        return CsvWriter(opts.output, texts + ([] if labels is None else ["label"]) + scores)

    def records(self, cfg, opts, labels, predictions, rows) -> list[dict]:
        texts = [cfg.text_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
        jsonl = Path(opts.output).suffix.lower() == ".jsonl"
        out = []
        for values, row in zip(predictions, rows):
            record = {column: row[column] for column in texts}
            if labels is None:
                record["score"] = float(values)
            elif jsonl:
                record.update(label=labels[int(values.argmax())],
                              scores={name: round(float(p), 6) for name, p in zip(labels, values)})
            else:
                record.update({"label": labels[int(values.argmax())],
                               **{f"score_{name}": round(float(p), 6) for name, p in zip(labels, values)}})
            out.append(record)
        return out


def _label_id(value, index: dict[str, int], labels: list[str] | None, where: str):
    """The model's id of a label (its name, or an integer id), or the float target of a regression model."""
    if value is None:
        raise DataError(f"{where}: missing label")
    if labels is None:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise DataError(f"{where}: label {value!r} is not a number (the model is a regression model)") from None
    text = str(value)
    if text in index:
        return index[text]
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(labels):
        return int(text)
    raise DataError(f"{where}: unknown label {value!r}; the model's labels are {labels}")


PREDICTIONS = TextClassificationPredictions()
