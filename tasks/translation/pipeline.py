"""`pipeline("seq2seq-translation", model=dir)`: transformers 5 dropped its translation pipelines."""
from __future__ import annotations

from typing import Any

from transformers import AutoModelForSeq2SeqLM
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import Pipeline

TAG = "seq2seq-translation"


class Seq2SeqTranslationPipeline(Pipeline):
    """Translate a text or a list of texts with any encoder-decoder model.

    `pipe("text")` -> [{"translation_text": ...}]; `pipe([...], batch_size=8)` -> one dict per text
    (a list per text when num_return_sequences > 1). Generation kwargs (num_beams, max_new_tokens,
    max_length, do_sample, ...) pass through to generate(); the model's saved generation config and
    source prefix (config.prefix, for T5-style models) are the defaults.
    """

    _pipeline_calls_generate = True
    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _default_generation_config = None  # the model's own generation config decides (beams, length)

    def __call__(self, inputs: str | list[str], **kwargs) -> Any:
        texts = inputs if isinstance(inputs, list) else [inputs]
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError("translate non-empty strings, or a non-empty list of them")
        results = super().__call__(inputs, **kwargs)
        if isinstance(inputs, list) and all(len(r) == 1 for r in results):
            return [r[0] for r in results]
        return results

    def _sanitize_parameters(self, truncation=None, max_source_length=None, clean_up_tokenization_spaces=None,
                             **generate_kwargs):
        pre = {k: v for k, v in {"truncation": truncation, "max_source_length": max_source_length}.items()
               if v is not None}
        post = {} if clean_up_tokenization_spaces is None else {"clean_up_tokenization_spaces": clean_up_tokenization_spaces}
        return pre, generate_kwargs, post

    def preprocess(self, text: str, truncation: bool = True, max_source_length: int | None = None) -> dict:
        encoded = self.tokenizer((self.prefix or "") + text, return_tensors="pt", truncation=truncation,
                                 max_length=max_source_length)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def _forward(self, inputs: dict, **generate_kwargs) -> dict:
        batch = inputs["input_ids"].shape[0]
        output = self.model.generate(**inputs, **self._prepare_generate_kwargs(generate_kwargs))
        return {"output_ids": output.reshape(batch, output.shape[0] // batch, *output.shape[1:])}

    def postprocess(self, outputs: dict, clean_up_tokenization_spaces: bool = True) -> list[dict]:
        texts = self.tokenizer.batch_decode(outputs["output_ids"][0], skip_special_tokens=True,
                                            clean_up_tokenization_spaces=clean_up_tokenization_spaces)
        return [{"translation_text": text.strip()} for text in texts]


PIPELINE_REGISTRY.register_pipeline(TAG, pipeline_class=Seq2SeqTranslationPipeline,
                                    pt_model=AutoModelForSeq2SeqLM, type="text")
