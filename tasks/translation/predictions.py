"""Translation prediction format: text lines, JSONL or TSV pairs in; one translation per source line (.txt) or JSONL out."""
from __future__ import annotations

from pathlib import Path

from datasets import Dataset

from shared.inputs.data import DataError, load_table, row_name
from shared.serving.predict import Inputs, Predictions
from shared.serving.writers import JsonLinesWriter, Writer
from tasks.translation.data import load_split
from tasks.translation.pipeline import TAG
from tasks.translation.sample_data import SOURCE_LANG, TARGET_LANG


class LineWriter(Writer):
    """One translation per line, aligned with the source lines."""

    def write(self, records: list) -> None:
        self.handle.writelines(" ".join(r["translation"].splitlines()) + "\n" for r in records)


class TranslationPredictions(Predictions):
    suffixes = (".txt", ".jsonl")
    # sources of similar length per batch: less padding, and a beam search that ends when its longest output does
    # wastes fewer steps on the others
    length_column = "source"

    def labels(self, model_config) -> None:
        return None

    def read(self, task, cfg, opts, labels):
        file = Path(opts.input)
        if file.suffix.lower() == ".txt":
            if not file.is_file():
                raise DataError(f"{file}: no such file")
            lines = file.read_text(encoding="utf-8").splitlines()  # blank lines stay, as blank translations
            return Inputs(Dataset.from_dict({"source": [s.strip() for s in lines], "target": [""] * len(lines)}), False)
        source_lang, target_lang = _languages(cfg)
        data = load_table(file) if file.suffix.lower() != ".tsv" else None
        if data is not None and not _has_targets(data, target_lang):
            return Inputs(_sources_only(data, source_lang, str(file)), False)
        return Inputs(load_split(str(file), source_lang, target_lang), True)

    def build(self, task, cfg, labels):
        """The project's seq2seq-translation pipeline over the saved model, on this process's device."""
        from accelerate import PartialState
        from transformers import pipeline

        pipe = pipeline(TAG, model=cfg.model_name_or_path, device=PartialState().device)
        return pipe.tokenizer, pipe

    def dataset(self, task, cfg, processor, raw, labelled, data):
        return raw.select_columns(["source"])  # the pipeline tokenizes; metrics() pairs the references by position

    def collate(self, task, cfg, processor):
        return lambda rows: {"source": [r["source"] for r in rows]}

    def step(self, task, cfg, model, batch):
        """Generation as the engine's evaluation runs it: the same beams, lengths, prefix and decoding."""
        prefix = "" if model.prefix else cfg.source_prefix
        texts = [prefix + s for s in batch["source"] if s]
        translated = iter(model(texts, batch_size=len(texts), num_beams=cfg.num_beams,
                                max_length=cfg.generation_length(), max_source_length=cfg.max_source_length,
                                clean_up_tokenization_spaces=model.tokenizer.clean_up_tokenization_spaces)
                          if texts else [])
        return [next(translated)["translation_text"] if s else "" for s in batch["source"]], [0] * len(batch["source"])

    def metrics(self, task, cfg, batches, raw, labels) -> dict:
        """`raw` comes in the predicted order, so the n-th translation's reference is its n-th target."""
        numbered, start = [], 0
        for texts, _ in batches:
            numbered.append((texts, range(start, start + len(texts))))
            start += len(texts)
        return task.compute_metrics(task.metric(labels), numbered, raw)

    def writer(self, cfg, opts, labels):
        return LineWriter(opts.output) if Path(opts.output).suffix.lower() == ".txt" else JsonLinesWriter(opts.output)

    def records(self, cfg, opts, labels, predictions, rows) -> list[dict]:
        return [{"source": row["source"], "translation": text, **({"reference": row["target"]} if row["target"] else {})}
                for text, row in zip(predictions, rows)]


def _languages(cfg) -> tuple[str | None, str | None]:
    """The --source_lang/--target_lang of the prediction config; for a model trained on the embedded sample (its
    run's config.yaml, beside the model, names no data) the sample's languages fill what no flag gave."""
    source_lang, target_lang = cfg.source_lang, cfg.target_lang
    run_config = Path(cfg.model_name_or_path).parent / "config.yaml"  # what parse_predict_args read the defaults from
    if run_config.is_file() and not cfg.dataset_name and not cfg.train_file:
        source_lang, target_lang = source_lang or SOURCE_LANG, target_lang or TARGET_LANG
    return source_lang, target_lang


def _has_targets(data: Dataset, target_lang: str | None) -> bool:
    nested = "translation" in data.column_names
    first = (data[0]["translation"] or {}) if nested and len(data) else {}
    return (target_lang in first) if nested else (target_lang in data.column_names)


def _sources_only(data: Dataset, source_lang: str | None, source: str) -> Dataset:
    """Rows with only the source language ({"translation": {"de": ...}} or a "de" column): texts to translate."""
    nested = "translation" in data.column_names
    texts = []
    for index, row in enumerate(data):
        text = (row["translation"] or {}).get(source_lang) if nested else row.get(source_lang)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{row_name(source, index)}: no {source_lang!r} text to translate")
        texts.append(text.strip())
    return Dataset.from_dict({"source": texts, "target": [""] * len(texts)})


PREDICTIONS = TranslationPredictions()
