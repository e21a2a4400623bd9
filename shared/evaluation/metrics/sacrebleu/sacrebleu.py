"""Corpus BLEU computed by the sacrebleu package (its default 13a tokenisation, so scores are comparable)."""
from __future__ import annotations

import datasets
import evaluate
import sacrebleu as scb

_DESCRIPTION = "sacreBLEU corpus BLEU (Post, 2018): detokenised hypotheses scored against detokenised references."

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of hypothesis strings.
    references: per hypothesis, a list of reference strings (every hypothesis needs the same number).
    tokenize: sacrebleu tokeniser ("13a" default, "intl", "char", "zh", "none", ...).
    lowercase: case-insensitive BLEU.
    smooth_method: "exp" (default), "floor", "add-k" or "none".
Returns:
    bleu (0-100), counts, totals and precisions (per n-gram order 1-4), bp (brevity penalty),
    sys_len and ref_len (tokens), and signature (the sacrebleu signature string for reporting).
"""


def transpose_references(references: list[list[str]]) -> list[list[str]]:
    """sacrebleu wants one stream per reference index; evaluate gives one list per hypothesis."""
    counts = {len(refs) for refs in references}
    if len(counts) != 1:
        raise ValueError(f"every prediction needs the same number of references, got counts {sorted(counts)}")
    return [list(stream) for stream in zip(*references)]


class Sacrebleu(evaluate.Metric):
    """sacreBLEU corpus BLEU; see the module's inputs description."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Post, A Call for Clarity in Reporting BLEU Scores (WMT 2018)",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string"))}),
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references, tokenize: str = "13a", lowercase: bool = False,
                 smooth_method: str = "exp") -> dict:
        bleu = scb.metrics.BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method)
        score = bleu.corpus_score(list(predictions), transpose_references(references))
        return {"bleu": score.score, "counts": list(score.counts), "totals": list(score.totals),
                "precisions": list(score.precisions), "bp": score.bp, "sys_len": score.sys_len,
                "ref_len": score.ref_len, "signature": str(bleu.get_signature())}
