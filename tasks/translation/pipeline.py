"""`pipeline("seq2seq-translation", model=dir)`: transformers 5 dropped its translation pipelines."""
from __future__ import annotations

import logging
from typing import Any

from transformers import AutoModelForSeq2SeqLM
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import Pipeline

from tasks.translation.sentences import split_sentences

TAG = "seq2seq-translation"
NO_LIMIT = 1_000_000  # transformers' placeholder model_max_length when a tokenizer states none is far above this
logger = logging.getLogger(__name__)


def input_limit(config, tokenizer) -> int | None:
    """Tokens the encoder can take: its position table and the tokenizer's stated limit, the smaller one."""
    encoder = getattr(config, "encoder", config)  # an EncoderDecoderConfig nests the encoder's
    limits = [getattr(encoder, "max_position_embeddings", None), tokenizer.model_max_length]
    limits = [n for n in limits if isinstance(n, int) and 0 < n < NO_LIMIT]
    return min(limits) if limits else None


class Seq2SeqTranslationPipeline(Pipeline):
    """Translate a text or a list of texts with any encoder-decoder model.

    `pipe("text")` -> [{"translation_text": ...}]; `pipe([...], batch_size=8)` -> one dict per text
    (a list per text when num_return_sequences > 1). Generation kwargs (num_beams, max_new_tokens,
    max_length, do_sample, ...) pass through to generate(); the model's saved generation config and
    source prefix (config.prefix, for T5-style models) are the defaults.

    Long text: with `split_sentences="auto"` (the default) a text with line breaks, or longer than the
    length the model was trained on (`config.max_source_length`, else its input limit), is split into sentences
    (tasks/translation/sentences.py), they are translated in batches (batch_size, default 8) and joined
    with the text's spaces and line breaks. `True` always splits, `False` never does. A piece still over
    the input limit (`config.max_input_length`, or the position table and tokenizer limit) is cut at
    word boundaries into pieces that fit, each translated; nothing is dropped, a warning is logged and
    the result carries "cut_sentences": how many sentences of that text were cut.
    """

    _pipeline_calls_generate = True
    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _default_generation_config = None  # the model's own generation config decides (beams, length)

    def __call__(self, inputs: str | list[str], split_sentences: bool | str = "auto", **kwargs) -> Any:
        texts = inputs if isinstance(inputs, list) else [inputs]
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError("translate non-empty strings, or a non-empty list of them")
        if split_sentences not in (True, False, "auto"):
            raise ValueError(f"split_sentences is True, False or 'auto', got {split_sentences!r}")
        limit = self._hard_limit(kwargs.get("max_source_length"))
        plans = [self._plan(text, split_sentences, limit) for text in texts]
        pieces = [piece for segments, _ in plans for piece, _ in segments]
        if len(pieces) > len(texts) and kwargs.get("batch_size") is None:
            kwargs["batch_size"] = 8  # split text: translate its sentences in batches
        outputs = super().__call__(pieces, **kwargs)
        results, at = [], 0
        for segments, cut in plans:
            results.append(_joined(segments, outputs[at:at + len(segments)], cut))
            at += len(segments)
        if isinstance(inputs, list):
            return [r[0] for r in results] if all(len(r) == 1 for r in results) else results
        return results[0]

    # ------------------------------------------------------------------ long text
    def _hard_limit(self, asked: int | None) -> int | None:
        limit = getattr(self.model.config, "max_input_length", None) or input_limit(self.model.config, self.tokenizer)
        return min(n for n in (limit, asked) if n) if (limit or asked) else None

    def _count(self, texts: list[str]) -> list[int]:
        prefix = self.prefix or ""
        # verbose=False: a text over the limit is what this counts for, not a mistake to warn about
        return [len(ids) for ids in self.tokenizer([prefix + t for t in texts], verbose=False)["input_ids"]]

    def _plan(self, text: str, split: bool | str, limit: int | None) -> tuple[list[tuple[str, str]], int]:
        """(piece, separator) pairs to translate for one text, and how many of its sentences were cut."""
        trained = getattr(self.model.config, "max_source_length", None) or limit
        segments = [(text.strip(), "")]
        long = "\n" in text.strip() or (trained and self._count([text])[0] > trained)
        if split is True or (split == "auto" and long):
            segments = split_sentences(text)
        if not limit:
            return segments, 0
        planned, cut = [], 0
        for (sentence, separator), length in zip(segments, self._count([s for s, _ in segments])):
            if length <= limit:
                planned.append((sentence, separator))
                continue
            parts = self._cut(sentence, limit)
            logger.warning("a sentence of %d tokens is over the model's input limit of %d: translated in %d "
                           "pieces cut at word boundaries (%r...)", length, limit, len(parts), sentence[:40])
            planned += [(part, " ") for part in parts[:-1]] + [(parts[-1], separator)]
            cut += 1
        return planned, cut

    def _cut(self, sentence: str, limit: int) -> list[str]:
        """Whole words per piece, each piece within `limit` tokens (a single longer word is truncated)."""
        words = sentence.split()
        overhead = self._count([""])[0]  # prefix and special tokens every piece carries
        sizes = [len(ids) for ids in self.tokenizer(words, add_special_tokens=False, verbose=False)["input_ids"]]
        pieces, current, size = [], [], 0
        for word, n in zip(words, sizes):
            if current and size + n + overhead > limit:
                pieces.append(" ".join(current))
                current, size = [], 0
            current.append(word)
            size += n
        return pieces + [" ".join(current)]

    # ------------------------------------------------------------------ one piece
    def _sanitize_parameters(self, truncation=None, max_source_length=None, clean_up_tokenization_spaces=None,
                             **generate_kwargs):
        pre = {k: v for k, v in {"truncation": truncation, "max_source_length": max_source_length}.items()
               if v is not None}
        post = {} if clean_up_tokenization_spaces is None else {"clean_up_tokenization_spaces": clean_up_tokenization_spaces}
        return pre, generate_kwargs, post

    def preprocess(self, text: str, truncation: bool = True, max_source_length: int | None = None) -> dict:
        encoded = self.tokenizer((self.prefix or "") + text, return_tensors="pt", truncation=truncation,
                                 max_length=max_source_length or self._hard_limit(None))
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def _forward(self, inputs: dict, **generate_kwargs) -> dict:
        batch, length = inputs["input_ids"].shape
        asked = {**self._generate_kwargs, **generate_kwargs}
        if self.model.generation_config.max_new_tokens is None and not {
                "max_length", "max_new_tokens", "generation_config"} & set(asked):
            # a long input gets room for its translation: 1.5 tokens per source token, within the positions
            room = int(1.5 * length) + 10
            limit = self._hard_limit(None)
            generate_kwargs["max_length"] = max(self.model.generation_config.max_length or 0,
                                                min(room, limit) if limit else room)
        output = self.model.generate(**inputs, **self._prepare_generate_kwargs(generate_kwargs))
        return {"output_ids": output.reshape(batch, output.shape[0] // batch, *output.shape[1:])}

    def postprocess(self, outputs: dict, clean_up_tokenization_spaces: bool = True) -> list[dict]:
        texts = self.tokenizer.batch_decode(outputs["output_ids"][0], skip_special_tokens=True,
                                            clean_up_tokenization_spaces=clean_up_tokenization_spaces)
        return [{"translation_text": text.strip()} for text in texts]


def _joined(segments: list[tuple[str, str]], outputs: list[list[dict]], cut: int) -> list[dict]:
    """One dict per returned sequence: the pieces' k-th translations joined with their separators."""
    joined = []
    for k in range(len(outputs[0])):
        text = "".join(out[k]["translation_text"] + separator for out, (_, separator) in zip(outputs, segments))
        joined.append({"translation_text": text.strip(), **({"cut_sentences": cut} if cut else {})})
    return joined


PIPELINE_REGISTRY.register_pipeline(TAG, pipeline_class=Seq2SeqTranslationPipeline,
                                    pt_model=AutoModelForSeq2SeqLM, type="text")
