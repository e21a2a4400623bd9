"""Multi-label classification metrics from per-label probabilities (scikit-learn under evaluate)."""
from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, precision_recall_fscore_support

_DESCRIPTION = (
    "Micro/macro precision-recall-F1, subset accuracy, mean average precision and per-label F1 of a "
    "multi-label classifier, computed from its per-label probabilities."
)

_KWARGS_DESCRIPTION = """
Args:
    predictions: per example, the per-label probabilities (sigmoid outputs), length num_labels.
    references: per example, the multi-hot target (0/1 per label), length num_labels.
    threshold: a label is predicted when its probability >= threshold; a float, or one float per label.
Returns:
    f1_micro, f1_macro, precision_micro, precision_macro, recall_micro, recall_macro (macro over all
    labels, zero_division=0), subset_accuracy (exact match of the whole label set), map (macro average
    precision over the labels that have at least one positive; None when none has), per_label_f1,
    per_label_support, num_samples.
"""


class Multilabel(evaluate.Metric):
    """Multi-label classification metrics; see the module's inputs description."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, threshold: float | list[float] = 0.5) -> dict:
        probs = np.asarray(predictions, dtype=np.float64)
        refs = np.asarray(references, dtype=np.int64)
        if probs.ndim != 2 or len(probs) == 0 or probs.shape != refs.shape:
            raise ValueError(
                f"predictions and references must be non-empty, equal-shape 2-D (examples x labels); "
                f"got {probs.shape} and {refs.shape}"
            )
        if not np.isin(refs, (0, 1)).all():
            raise ValueError("references must be multi-hot vectors of 0s and 1s")
        thresholds = np.asarray(threshold, dtype=np.float64)
        if thresholds.ndim == 1 and len(thresholds) != probs.shape[1]:
            raise ValueError(f"threshold has {len(thresholds)} values for {probs.shape[1]} labels")
        preds = (probs >= thresholds).astype(np.int64)

        scores = {}
        for average in ("micro", "macro"):
            p, r, f, _ = precision_recall_fscore_support(refs, preds, average=average, zero_division=0)
            scores.update({f"f1_{average}": float(f), f"precision_{average}": float(p), f"recall_{average}": float(r)})
        _, _, per_label_f1, support = precision_recall_fscore_support(refs, preds, average=None, zero_division=0)

        # average precision is undefined for a label with no positive example: skip those labels
        with_positives = np.flatnonzero(refs.sum(axis=0) > 0)
        ap = [average_precision_score(refs[:, j], probs[:, j]) for j in with_positives]
        return {
            **scores,
            "subset_accuracy": float(accuracy_score(refs, preds)),
            "map": float(np.mean(ap)) if ap else None,
            "per_label_f1": [float(v) for v in per_label_f1],
            "per_label_support": [int(v) for v in support],
            "num_samples": int(len(refs)),
        }
