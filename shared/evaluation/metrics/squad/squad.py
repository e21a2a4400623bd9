"""SQuAD exact match and F1 (v1.1; with version_2_with_negative, v2.0's HasAns/NoAns split)."""
from __future__ import annotations

import collections
import re
import string

import datasets
import evaluate

_DESCRIPTION = "Exact match and token F1 of extractive answers, as the official SQuAD v1.1 and v2.0 scripts compute them."

_KWARGS_DESCRIPTION = """
Args:
    predictions: per question, {"id": str, "prediction_text": str}; "" means "no answer".
    references: per question, {"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}};
        an empty text list marks an unanswerable (SQuAD v2.0) question.
    version_2_with_negative: also report the split into answerable (HasAns_*) and unanswerable (NoAns_*)
        questions. Unanswerable references are scored in either mode: only "" is right for them.
Returns:
    exact_match and f1 in percent (0-100), each the mean over questions of the best score against any gold
    answer, after SQuAD normalisation (lower case, no punctuation, no articles a/an/the, single spaces);
    total; with version_2_with_negative, HasAns_exact_match/HasAns_f1/HasAns_total and the NoAns_* triple.
"""


def normalize_answer(text: str) -> str:
    """The official normalisation: lower case, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_score(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:  # v2.0 rule: "no answer" scores 1 only against "no answer"
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _mean(values: list[float]) -> float:
    return 100.0 * sum(values) / len(values) if values else 0.0


class Squad(evaluate.Metric):
    """SQuAD v1.1 / v2.0 exact match and F1; see the module's inputs description."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Rajpurkar et al., SQuAD (EMNLP 2016) and Know What You Don't Know (ACL 2018)",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
                "references": {"id": datasets.Value("string"), "answers": datasets.Sequence(
                    {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")})},
            }),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references, version_2_with_negative: bool = False) -> dict:
        predicted = {p["id"]: p["prediction_text"] for p in predictions}
        missing = [r["id"] for r in references if r["id"] not in predicted]
        if missing:
            raise ValueError(f"{len(missing)} reference ids have no prediction, e.g. {missing[:3]}")
        exact, f1, has_answer = [], [], []
        for ref in references:
            golds = [t for t in ref["answers"]["text"] if normalize_answer(t)] or [""]
            guess = predicted[ref["id"]]
            exact.append(max(exact_score(guess, g) for g in golds))
            f1.append(max(f1_score(guess, g) for g in golds))
            has_answer.append(golds != [""])
        results = {"exact_match": _mean(exact), "f1": _mean(f1), "total": len(references)}
        if version_2_with_negative:
            for name, keep in (("HasAns", True), ("NoAns", False)):
                chosen = [i for i, flag in enumerate(has_answer) if flag == keep]
                results.update({f"{name}_exact_match": _mean([exact[i] for i in chosen]),
                                f"{name}_f1": _mean([f1[i] for i in chosen]), f"{name}_total": len(chosen)})
        return results
