"""`pipeline("extractive-question-answering", model=dir)`: transformers 5 dropped its question-answering pipeline."""
from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForQuestionAnswering
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline

from tasks.question_answering.spans import best_answers, context_offsets, tokenize_windows

TAG = "extractive-question-answering"


def _as_examples(args: tuple, kwargs: dict) -> dict | list[dict]:
    """question=..., context=... (strings or lists), a {"question", "context"} dict, or a list of them."""
    if args and isinstance(args[0], (dict, list)):
        return args[0]
    question = kwargs.pop("question", args[0] if args else None)
    context = kwargs.pop("context", args[1] if len(args) > 1 else None)
    if question is None or context is None:
        raise ValueError("give question= and context= (or a {'question', 'context'} dict, or a list of them)")
    if isinstance(question, list) or isinstance(context, list):
        questions = question if isinstance(question, list) else [question] * len(context)
        contexts = context if isinstance(context, list) else [context] * len(questions)
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
        return [{"question": q, "context": c} for q, c in zip(questions, contexts)]
    return {"question": question, "context": context}


class ExtractiveQuestionAnsweringPipeline(ChunkPipeline):
    """Answer spans copied from the context; long contexts are read in overlapping windows.

    Call with `question=`, `context=` and optionally `top_k` (answers per question), `doc_stride`,
    `max_seq_len`, `max_answer_len`, `n_best`, `handle_impossible_answer` (allow "" as the answer).
    Returns {"answer", "start", "end", "score"} (a list of them when top_k > 1), a list per question
    for list inputs.
    """

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False

    def __call__(self, *args, **kwargs) -> Any:
        examples = _as_examples(args, kwargs)
        for example in examples if isinstance(examples, list) else [examples]:
            if not str(example.get("question", "")).strip() or not str(example.get("context", "")).strip():
                raise ValueError("question and context must be non-empty strings")
        return super().__call__(examples, **kwargs)

    def _sanitize_parameters(self, top_k=None, doc_stride=None, max_seq_len=None, max_answer_len=None,
                             n_best=None, handle_impossible_answer=None, **unused):
        if unused:
            raise TypeError(f"unexpected arguments {sorted(unused)}")
        pre = {k: v for k, v in {"doc_stride": doc_stride, "max_seq_len": max_seq_len}.items() if v is not None}
        post = {k: v for k, v in {"top_k": top_k, "max_answer_len": max_answer_len, "n_best": n_best,
                                  "handle_impossible_answer": handle_impossible_answer}.items() if v is not None}
        return pre, {}, post

    def preprocess(self, example: dict, doc_stride: int = 128, max_seq_len: int | None = None):
        max_seq_len = max_seq_len or min(384, self.tokenizer.model_max_length)
        encoded = tokenize_windows(self.tokenizer, [example["question"]], [example["context"]],
                                   max_seq_len, min(doc_stride, max_seq_len // 2))
        count = len(encoded["input_ids"])
        names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
        for i in range(count):
            window = {k: torch.tensor([encoded[k][i]]) for k in names}
            yield {**window, "offsets": context_offsets(encoded, i), "context": example["context"],
                   "is_last": i == count - 1}

    def _forward(self, inputs: dict) -> dict:
        extras = {k: inputs.pop(k) for k in ("offsets", "context", "is_last")}
        outputs = self.model(**inputs)
        return {"start_logits": outputs.start_logits, "end_logits": outputs.end_logits, **extras}

    def postprocess(self, windows: list[dict], top_k: int = 1, max_answer_len: int = 30, n_best: int = 20,
                    handle_impossible_answer: bool = False):
        spans = [(w["start_logits"][0].float().numpy(), w["end_logits"][0].float().numpy(), w["offsets"])
                 for w in windows]
        answers = best_answers(spans, windows[0]["context"], max(n_best, top_k), max_answer_len,
                               handle_impossible_answer, top_k=top_k)
        answers = [{k: a[k] for k in ("score", "start", "end", "answer")} for a in answers]
        return answers[0] if top_k == 1 else answers


PIPELINE_REGISTRY.register_pipeline(TAG, pipeline_class=ExtractiveQuestionAnsweringPipeline,
                                    pt_model=AutoModelForQuestionAnswering, type="text")
