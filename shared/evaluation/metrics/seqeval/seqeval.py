"""Entity-level precision, recall and F1 (micro and per type) by seqeval in strict IOB2 mode, and token accuracy."""
from __future__ import annotations

import datasets
import evaluate
from seqeval.metrics import accuracy_score, classification_report, f1_score
from seqeval.scheme import IOB2, Entities

_DESCRIPTION = (
    "Entity-level scores of a sequence tagger: an entity counts as found only when its type and exact word span "
    "match, entities read in strict IOB2 (B-X opens, I-X of the same type continues, a stray I-X opens nothing), "
    "as seqeval's mode='strict' with scheme=IOB2 computes them."
)

_KWARGS_DESCRIPTION = """
Args:
    predictions: per sentence, the predicted tag of each word (strings such as "B-PER", "I-PER", "O").
    references: per sentence, the true tag of each word, IOB2, as many as in the prediction.
Returns:
    precision, recall, f1: micro-averaged over every entity (strict IOB2).
    accuracy: fraction of words whose tag equals the true tag (O included).
    conlleval_f1: micro F1 with conlleval's lenient chunking (a stray I-X opens an entity), for comparison.
    per_type: {type: {"precision", "recall", "f1", "number"}} where number counts the true entities.
    num_entities, num_predicted: true and predicted entity counts; num_words.
"""


class Seqeval(evaluate.Metric):
    """Strict IOB2 entity scores; see the module's inputs description."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Nakayama, seqeval: a Python framework for sequence labeling evaluation (2018)",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string")),
                                        "references": datasets.Sequence(datasets.Value("string"))}),
            reference_urls=["https://github.com/chakki-works/seqeval"],
        )

    def _compute(self, predictions, references) -> dict:
        predictions, references = [list(p) for p in predictions], [list(r) for r in references]
        for row, (prediction, reference) in enumerate(zip(predictions, references)):
            if len(prediction) != len(reference):
                raise ValueError(f"sentence {row}: {len(prediction)} predicted tags for {len(reference)} words")
        results = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "per_type": {}, "conlleval_f1": 0.0}
        if _count(references) + _count(predictions):  # seqeval averages over nothing otherwise (NaN warnings)
            report = classification_report(references, predictions, output_dict=True, mode="strict", scheme=IOB2,
                                           zero_division=0)
            micro = report.pop("micro avg")
            results.update(precision=float(micro["precision"]), recall=float(micro["recall"]),
                           f1=float(micro["f1-score"]))
            results["per_type"] = {kind: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                                          "f1": float(v["f1-score"]), "number": int(v["support"])}
                                   for kind, v in report.items() if not kind.endswith(" avg")}
            results["conlleval_f1"] = float(f1_score(references, predictions, zero_division=0))
        results["accuracy"] = float(accuracy_score(references, predictions)) if references else 0.0
        results["num_entities"] = _count(references)
        results["num_predicted"] = _count(predictions)
        results["num_words"] = sum(len(r) for r in references)
        return results


def _count(rows) -> int:
    """Entities in strict IOB2."""
    return sum(len(sentence) for sentence in Entities(rows, IOB2).entities) if rows else 0
