"""Question/context windows with offsets (long contexts split with a stride) and span decoding back to text."""
from __future__ import annotations

import numpy as np


def tokenize_windows(tokenizer, questions: list[str], contexts: list[str], max_length: int, stride: int) -> dict:
    """Tokenize (question, context) pairs into overlapping windows over the context.

    Questions are left-stripped: leading spaces only waste tokens. Only the context is truncated, so a
    long context yields several windows, `stride` tokens overlapping; `overflow_to_sample_mapping`
    says which pair each window came from. Padding is left to the collator (dynamic per batch).
    """
    if tokenizer.padding_side != "right":
        raise ValueError("question answering needs a right-padding tokenizer (question first, then context)")
    return tokenizer([q.lstrip() for q in questions], contexts, truncation="only_second", max_length=max_length,
                     stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)


def context_offsets(encoded, index: int) -> list:
    """Character offsets of window `index`, None on question and special tokens (never an answer)."""
    sequence_ids = encoded.sequence_ids(index)
    return [tuple(o) if s == 1 else None for o, s in zip(encoded["offset_mapping"][index], sequence_ids)]


def answer_positions(offsets: list, answer_start: int, answer_text: str) -> tuple[int, int]:
    """Token (start, end) of the answer in one window, or (0, 0) (the CLS token) if it is not fully inside."""
    start_char, end_char = answer_start, answer_start + len(answer_text)
    inside = [i for i, o in enumerate(offsets) if o is not None]
    if not inside or offsets[inside[0]][0] > start_char or offsets[inside[-1]][1] < end_char:
        return 0, 0
    start = next(i for i in inside if offsets[i][1] > start_char)
    end = next(i for i in reversed(inside) if offsets[i][0] < end_char)
    return start, end


def _softmax(logits: np.ndarray, keep: np.ndarray) -> np.ndarray:
    masked = np.where(keep, logits, -np.inf)
    exp = np.exp(masked - masked.max())
    return exp / exp.sum()


def window_spans(start_logits, end_logits, offsets: list, n_best: int, max_answer_length: int) -> tuple[list, float]:
    """The n-best spans of one window and its null score.

    Returns ([(logit score, probability, char start, char end), ...] best first, (null logit, null
    probability)): the null ("no answer") span is CLS to CLS, scored start[0] + end[0]. Probabilities
    are p(start) * p(end), both softmaxes taken over the context tokens and CLS.
    """
    length = len(offsets)
    start_logits, end_logits = np.asarray(start_logits[:length], float), np.asarray(end_logits[:length], float)
    keep = np.array([o is not None for o in offsets])
    keep[0] = True  # CLS: the "no answer" position
    p_start, p_end = _softmax(start_logits, keep), _softmax(end_logits, keep)
    spans = []
    for s in np.argsort(start_logits)[::-1][:n_best]:
        for e in np.argsort(end_logits)[::-1][:n_best]:
            if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                continue
            spans.append((float(start_logits[s] + end_logits[e]), float(p_start[s] * p_end[e]),
                          offsets[s][0], offsets[e][1]))
    spans.sort(key=lambda span: span[0], reverse=True)
    return spans[:n_best], (float(start_logits[0] + end_logits[0]), float(p_start[0] * p_end[0]))


def best_answers(windows: list[tuple], context: str, n_best: int, max_answer_length: int,
                 allow_null: bool, null_threshold: float = 0.0, top_k: int = 1) -> list[dict]:
    """Answers of one question from all its windows: [(start_logits, end_logits, offsets), ...].

    The null score is the lowest over windows (the window that sees the answer best speaks for the
    question); with allow_null, "" wins when null score > best span score + null_threshold.
    """
    best, nulls = {}, []
    for start_logits, end_logits, offsets in windows:
        found, null = window_spans(start_logits, end_logits, offsets, n_best, max_answer_length)
        nulls.append(null)
        for span in found:  # overlapping windows see the same span: keep its best score
            if span[0] > best.get(span[2:], (float("-inf"),))[0]:
                best[span[2:]] = span
    ranked = sorted(best.values(), key=lambda span: span[0], reverse=True)
    answers = [{"answer": context[s:e], "start": s, "end": e, "score": prob, "logit_score": logit}
               for logit, prob, s, e in ranked[:top_k]]
    null_logit, null_prob = min(nulls) if nulls else (0.0, 0.0)
    if allow_null and (not answers or null_logit > answers[0]["logit_score"] + null_threshold):
        null = {"answer": "", "start": 0, "end": 0, "score": null_prob, "logit_score": null_logit}
        answers = [null] + answers[:top_k - 1]
    return answers or [{"answer": "", "start": 0, "end": 0, "score": 0.0, "logit_score": float("-inf")}]
