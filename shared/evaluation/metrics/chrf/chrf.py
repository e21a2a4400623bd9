"""Corpus chrF (and chrF++ with word_order=2) computed by the sacrebleu package."""
from __future__ import annotations


import datasets
import evaluate
import sacrebleu as scb

_DESCRIPTION = "chrF (Popovic, 2015): character n-gram F-score, as sacrebleu computes it; chrF++ adds word n-grams."

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of hypothesis strings.
    references: per hypothesis, a list of reference strings (every hypothesis needs the same number).
    char_order: character n-gram order (6); word_order: word n-gram order (0 = chrF, 2 = chrF++);
    beta: recall weight (2); lowercase: case-insensitive; whitespace: count whitespace as characters.
Returns:
    chrf (0-100), char_order, word_order, beta, signature.
"""


def _transpose(references: list[list[str]]) -> list[list[str]]:
    counts = {len(refs) for refs in references}
    if len(counts) != 1:
        raise ValueError(f"every prediction needs the same number of references, got counts {sorted(counts)}")
    return [list(stream) for stream in zip(*references)]


class Chrf(evaluate.Metric):
    """sacrebleu chrF / chrF++; see the module's inputs description."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Popovic, chrF: character n-gram F-score for automatic MT evaluation (WMT 2015)",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string"))}),
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references, char_order: int = 6, word_order: int = 0, beta: int = 2,
                 lowercase: bool = False, whitespace: bool = False) -> dict:
        chrf = scb.metrics.CHRF(char_order=char_order, word_order=word_order, beta=beta, lowercase=lowercase,
                                whitespace=whitespace)
        score = chrf.corpus_score(list(predictions), _transpose(references))
        return {"chrf": score.score, "char_order": char_order, "word_order": word_order, "beta": beta,
                "signature": str(chrf.get_signature())}
