"""Translation hooks: sentence pairs, a seq2seq model, beam-search evaluation scored with sacreBLEU and chrF."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import evaluate
import torch
import torch.nn.functional as F
from datasets import Dataset, DatasetDict
from transformers import DataCollatorForSeq2Seq

from shared.toolkit.config import ConfigError, TrainConfig
from shared.inputs.data import load_hub_or_files
from shared.inputs.splits import ensure_validation, limit_samples
from shared.evaluation.scoring import load_metric
from shared.training.losses import LossSettings
from shared.task import DemoSpec, MetricSpec, Task, TaskData, register_task
from shared.inputs.vision import adaptable_layers
from tasks.translation.data import from_hub_split, load_split, validated
from tasks.translation.modeling import SCRATCH, build_seq2seq, build_tokenizer
from tasks.translation.pipeline import TAG
from tasks.translation.sample_data import SOURCE_LANG, TARGET_LANG, make_pairs

INDEX = "example_index"  # batch entry naming the validation row; not a model input


@dataclass
class TranslationConfig(TrainConfig):
    model_name_or_path: str = field(default=SCRATCH, metadata={"help": (
        f"'{SCRATCH}': a small Marian trained from scratch with a BPE tokenizer trained on the data; 'minilm' or "
        "an encoder dir: bert2bert warm start; or any seq2seq hub id / dir.")})
    source_lang: Optional[str] = field(default=None, metadata={"help": "Source key in the data (e.g. de)."})
    target_lang: Optional[str] = field(default=None, metadata={"help": "Target key in the data (e.g. en)."})
    source_prefix: str = field(default="", metadata={"help": "Prepended to every source, e.g. 'translate German to English: '."})
    max_source_length: int = field(default=128, metadata={"help": "Source tokens per row (longer ones are cut).",
                                                          "range": "[1, inf)"})
    max_target_length: int = field(default=128, metadata={"help": "Target tokens per row (longer ones are cut).",
                                                          "range": "[1, inf)"})
    max_position_embeddings: int = field(default=512, metadata={"help": (
        f"{SCRATCH}: tokens the model can take in and put out (its position table), whatever the training length."),
        "range": "[1, inf)"})
    generation_max_length: Optional[int] = field(default=None, metadata={"help": "Default: max_target_length.",
                                                                         "range": "[1, inf)"})
    num_beams: int = field(default=4, metadata={"help": "Beam width of generation (1: greedy).", "range": "[1, inf)"})
    # generation settings saved with the model, so evaluation and the pipeline decode alike (README: measured)
    no_repeat_ngram_size: int = field(default=0, metadata={"help": "No n-gram of this size twice in an output (0: off).",
                                                           "range": "[0, inf)"})
    repetition_penalty: float = field(default=1.0, metadata={"help": "Above 1 lowers tokens already generated.",
                                                             "range": "(0, inf)"})
    length_penalty: float = field(default=1.0, metadata={
        "help": "Beam search: above 1 favours longer outputs.", "range": "(-inf, inf)"})
    group_by_length: bool = True  # similar lengths per batch: dynamic padding then wastes little
    learning_rate: float = 5e-4  # from-scratch default; warm-started models want ~5e-5
    warmup_ratio: float = 0.1
    label_smoothing: float = 0.1
    # marian-scratch size
    vocab_size: int = field(default=8000, metadata={"help": f"{SCRATCH}: joint BPE vocabulary size.", "range": "[1, inf)"})
    d_model: int = field(default=256, metadata={"help": f"{SCRATCH}: width, a multiple of --attention_heads.",
                                                "range": "[1, inf)"})
    encoder_layers: int = field(default=3, metadata={"help": f"{SCRATCH}: encoder layers.", "range": "[1, inf)"})
    decoder_layers: int = field(default=3, metadata={"help": f"{SCRATCH}: decoder layers.", "range": "[1, inf)"})
    attention_heads: int = field(default=4, metadata={"help": f"{SCRATCH}: attention heads.", "range": "[1, inf)"})
    ffn_dim: int = field(default=1024, metadata={"help": f"{SCRATCH}: feed-forward width.", "range": "[1, inf)"})
    dropout: float = field(default=0.1, metadata={"help": f"{SCRATCH}: dropout.", "range": "[0, 1)"})
    num_report_samples: int = field(default=50, metadata={"help": "Translations listed in samples.md.", "range": "[0, inf)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model_name_or_path == SCRATCH and self.d_model % self.attention_heads:
            raise ConfigError(f"--d_model {self.d_model} must be a multiple of --attention_heads {self.attention_heads}")
        if self.use_peft and self.model_name_or_path == SCRATCH:
            raise ConfigError("--use_peft adapts pretrained weights, and marian-scratch starts from random ones: "
                              "train it in full, or give a pretrained --model_name_or_path")
        longest = max(self.max_source_length, self.max_target_length, self.generation_length())
        if self.model_name_or_path == SCRATCH and longest > self.max_position_embeddings:
            raise ConfigError(f"--max_position_embeddings {self.max_position_embeddings} is below the longest length "
                              f"asked for ({longest}): raise it")
        if self.source_lang and self.source_lang == self.target_lang:
            raise ConfigError(f"--source_lang and --target_lang are both {self.source_lang!r}")

    def generation_length(self) -> int:
        return self.generation_max_length or self.max_target_length


@dataclass
class TranslationData(TaskData):
    """The sentence pairs, and both sides of the training pairs: what a marian-scratch BPE tokenizer trains on."""

    train_texts: list[str] = field(default_factory=list)


@register_task("translation")
class Translation(Task):
    config_class = TranslationConfig
    pipeline_tag = TAG
    predictions = "tasks.translation.predictions:PREDICTIONS"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.generate_kwargs = {"num_beams": cfg.num_beams, "max_length": cfg.generation_length()}

    # ------------------------------------------------------------------ data
    def load_data(self) -> TranslationData:
        cfg = self.cfg
        src, tgt = cfg.source_lang, cfg.target_lang
        sources = {}
        if cfg.dataset_name:
            raw, sources = load_hub_or_files(cfg)
            data = DatasetDict({k: from_hub_split(v, sources[k], src, tgt) for k, v in raw.items()})
        elif cfg.train_file:
            data = DatasetDict({"train": load_split(cfg.train_file, src, tgt)})
            sources = {"train": str(cfg.train_file)}
            for split, path in (("validation", cfg.validation_file), ("test", cfg.test_file)):
                if path:
                    data[split], sources[split] = load_split(path, src, tgt), str(path)
        else:  # the embedded sample (en -> toy, generated: no file to name): offline, learnable in a minute or two
            data = DatasetDict({split: _sample(n, seed) for split, n, seed in (("train", 2000, 0), ("validation", 100, 1))})
        data = limit_samples(ensure_validation(data, cfg), cfg)
        return TranslationData(data, sources=sources,
                               train_texts=list(data["train"]["source"]) + list(data["train"]["target"]))

    # ------------------------------------------------------------------ model
    def build_processor(self, data):
        if self.cfg.model_name_or_path == SCRATCH and data is None:
            raise ConfigError(f"{SCRATCH} trains its tokenizer on the training data; to reload a trained model, give "
                              "--model_name_or_path <run>/best")
        return build_tokenizer(self.cfg, data.train_texts if data is not None else [])

    def head_modules(self, model) -> list[str]:
        """A bert2bert warm start's new parts (cross-attention, the decoder's LM head if the checkpoint had none)."""
        return list(getattr(model, "fresh_modules", []))

    def lora_target_modules(self, model) -> list[str] | str:
        if getattr(model, "fresh_modules", None):  # every other linear layer: peft knows no bert2bert targets
            return adaptable_layers(model, exclude=self.head_modules(model))
        return super().lora_target_modules(model)

    def build_model(self, labels, processor=None):
        # The model is sized and configured by its tokenizer (vocabulary, special ids, input limit): the run's
        # processor, or (a saved model reloaded alone) the tokenizer saved beside it.
        tokenizer = processor if processor is not None else self.build_processor(None)
        model = build_seq2seq(self.cfg, tokenizer)
        model.tokenizer = tokenizer  # decodes what eval_step generates (not saved: the run saves the processor)
        return model

    # ------------------------------------------------------------------ batches
    def preprocess(self, processor, dataset, split: str, data):
        cfg = self.cfg

        def encode(batch, indices):
            encoded = processor([cfg.source_prefix + s for s in batch["source"]], max_length=cfg.max_source_length,
                                truncation=True)
            labels = processor(text_target=batch["target"], max_length=cfg.max_target_length, truncation=True)
            # BERT-style tokenizers open with [CLS], which is already the decoder start token: drop it
            cls = processor.cls_token_id
            encoded["labels"] = [ids[1:] if cls is not None and ids[0] == cls else ids for ids in labels["input_ids"]]
            encoded.pop("token_type_ids", None)
            encoded[INDEX] = indices
            return encoded

        return dataset.map(encode, batched=True, with_indices=True, remove_columns=dataset.column_names,
                           num_proc=cfg.preprocessing_num_workers, desc=f"tokenizing {split}")

    def collate_fn(self, processor):
        # Labels are padded with -100 so padding never counts in the loss.
        pad = DataCollatorForSeq2Seq(processor, label_pad_token_id=-100,
                                     pad_to_multiple_of=8)  # few shapes: the allocator reuses blocks

        def collate(rows: list[dict]) -> dict:
            indices = [row.pop(INDEX) for row in rows]
            return {**pad(rows), INDEX: torch.tensor(indices)}

        return collate

    def compute_loss(self, model, batch, loss):
        # Token-level cross-entropy with loss.label_smoothing (--label_smoothing); class weights and focal loss do
        # not apply to a vocabulary (plain F.cross_entropy, not classification_loss: --loss focal stays refused).
        outputs = model(**{k: v for k, v in batch.items() if k != INDEX})
        if not loss.label_smoothing:
            return outputs.loss, outputs
        logits, labels = outputs.logits.float(), batch["labels"]
        value = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100,
                                label_smoothing=loss.label_smoothing)
        return value, outputs

    def eval_step(self, model, batch, loss=None):
        # evaluation loss: smoothed as in training (--label_smoothing)
        value, _ = self.compute_loss(
            model, batch, loss if loss is not None else LossSettings(label_smoothing=self.cfg.label_smoothing))
        generator = getattr(model, "module", model)  # a distributed wrapper keeps generate() on its module
        ids = generator.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 **self.generate_kwargs)
        texts = [t.strip() for t in generator.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return value, texts, batch[INDEX]

    # ------------------------------------------------------------------ metrics
    def metric(self, labels) -> MetricSpec:
        return MetricSpec(evaluate.combine([load_metric("sacrebleu"), load_metric("chrf")]), "bleu")

    @staticmethod
    def _pairs(batches: list[tuple], dataset) -> tuple[list[str], list[str], list[int]]:
        predictions = [text for texts, _ in batches for text in texts]
        indices = [int(i) for _, index in batches for i in index]
        targets = list(dataset["target"])
        return predictions, [targets[i] for i in indices], indices

    def compute_metrics(self, spec: MetricSpec, batches: list[tuple], dataset) -> dict:
        predictions, references, _ = self._pairs(batches, dataset)
        scores = spec.module.compute(predictions=predictions, references=[[r] for r in references])
        lengths = [len(p.split()) for p in predictions]
        return {"bleu": scores["bleu"], "chrf": scores["chrf"], "bp": scores["bp"],
                "gen_len": sum(lengths) / max(1, len(lengths)), "num_samples": len(predictions),
                "signature": scores["sacrebleu_signature"]}

    def eval_report(self, out_dir, batches, dataset, labels) -> None:
        # The engine hands reports the run's plots/ folder; translations belong beside results.json.
        run_dir = Path(out_dir).parent
        predictions, references, indices = self._pairs(batches, dataset)
        sources = list(dataset["source"])
        rows = [{"source": sources[i], "reference": r, "prediction": p}
                for p, r, i in zip(predictions, references, indices)]
        with (run_dir / "translations.jsonl").open("w") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        table = "\n".join(f"| {r['source']} | {r['reference']} | {r['prediction']} |"
                          for r in rows[:self.cfg.num_report_samples])
        (run_dir / "samples.md").write_text(f"| source | reference | prediction |\n|---|---|---|\n{table}\n")

    @classmethod
    def demo(cls) -> DemoSpec:
        import gradio as gr

        from tasks.translation.demo import examples_from

        def predict(pipe, text: str, beams: float):
            result = pipe(text, num_beams=int(beams))[0]  # long text: translated a sentence at a time
            cut = result.get("cut_sentences")
            note = f"\n\n[{cut} sentence(s) over the model's input limit were cut into pieces]" if cut else ""
            return result["translation_text"] + note

        return DemoSpec(pipeline_tag=TAG, predict=predict,
                        inputs=lambda: [gr.Textbox(label="Source text", lines=3),
                                        gr.Slider(1, 8, value=4, step=1, label="Beams")],
                        outputs=lambda: [gr.Textbox(label="Translation")],
                        examples=[[row["translation"][SOURCE_LANG], 4] for row in make_pairs(3, seed=7)],
                        examples_from=examples_from)


def _sample(n: int, seed: int) -> Dataset:
    pairs = [(r["translation"][SOURCE_LANG], r["translation"][TARGET_LANG]) for r in make_pairs(n, seed)]
    return validated(pairs, [f"sample row {i}" for i in range(n)])
