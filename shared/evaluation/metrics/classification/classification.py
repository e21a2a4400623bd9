"""Single-label classification metrics from class probabilities (scikit-learn under evaluate)."""
from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

_DESCRIPTION = (
    "Accuracy, macro/weighted precision-recall-F1, per-class scores, ROC-AUC, log loss, top-k accuracy "
    "and the confusion matrix of a single-label classifier, computed from its class probabilities."
)

_KWARGS_DESCRIPTION = """
Args:
    predictions: per example, the class probability vector (softmax output), length num_labels.
        A length-1 vector is read as the positive-class probability of a binary (sigmoid) classifier.
    references: per example, the true class id (int in [0, num_labels)).
    num_labels: number of classes; defaults to the length of the probability vectors.
    top_k: k of the top-k accuracy, reported as `top_<k>_accuracy` only when num_labels > top_k
        (None disables it).
Returns:
    accuracy, precision, recall, f1 (macro over the classes present in references or predictions,
    as scikit-learn does), f1_weighted, per_class_precision/recall/f1/support (length num_labels,
    zero_division=0), roc_auc (binary: positive-class probability; multiclass: one-vs-rest macro;
    None when a class is missing from the references), log_loss (-mean log p(true class), clipped
    at 1e-15 after renormalising rows to sum to 1), top_<k>_accuracy, confusion_matrix (rows = true,
    columns = predicted), num_samples.
"""

_EPS = 1e-15  # floor on p(true class) so one confident mistake gives a large, finite log loss


def _normalise(probs: np.ndarray) -> np.ndarray:
    """Clip negatives, renormalise rows to sum to 1; an all-zero row becomes uniform."""
    probs = np.clip(probs, 0.0, None)
    sums = probs.sum(axis=1, keepdims=True)
    uniform = np.full_like(probs, 1.0 / probs.shape[1])
    return np.where(sums > 0, probs / np.where(sums > 0, sums, 1.0), uniform)


def _as_floats(values) -> list[float]:
    return [float(v) for v in values]


class Classification(evaluate.Metric):
    """Single-label classification metrics; see the module's inputs description."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            # float32 probabilities: an int64 feature would silently truncate them
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, num_labels: int | None = None, top_k: int | None = 5) -> dict:
        probs = np.asarray(predictions, dtype=np.float64)
        refs = np.asarray(references, dtype=np.int64)
        if probs.ndim != 2 or len(probs) == 0:
            raise ValueError(f"predictions must be non-empty equal-length probability vectors, got shape {probs.shape}")
        if probs.shape[1] == 1:  # sigmoid output: p(positive) -> [p(negative), p(positive)]
            probs = np.concatenate([1.0 - probs, probs], axis=1)
        num_labels = int(num_labels) if num_labels is not None else probs.shape[1]
        if probs.shape[1] != num_labels:
            raise ValueError(f"num_labels={num_labels} but the probability vectors have length {probs.shape[1]}")
        if refs.min() < 0 or refs.max() >= num_labels:
            raise ValueError(f"references must be class ids in [0, {num_labels}), got {refs.min()}..{refs.max()}")
        if probs.min() < -1e-6 or probs.max() > 1 + 1e-6:
            raise ValueError("predictions must be probabilities in [0, 1] (apply softmax to logits first)")

        probs = _normalise(probs)
        preds = probs.argmax(axis=1)
        labels = list(range(num_labels))

        # macro/weighted over the classes present (scikit-learn's default), per-class over all labels
        precision, recall, f1, _ = precision_recall_fscore_support(refs, preds, average="macro", zero_division=0)
        _, _, f1_weighted, _ = precision_recall_fscore_support(refs, preds, average="weighted", zero_division=0)
        pc_precision, pc_recall, pc_f1, pc_support = precision_recall_fscore_support(
            refs, preds, labels=labels, average=None, zero_division=0
        )

        results = {
            "accuracy": float((preds == refs).mean()),
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "f1_weighted": float(f1_weighted),
            "per_class_precision": _as_floats(pc_precision),
            "per_class_recall": _as_floats(pc_recall),
            "per_class_f1": _as_floats(pc_f1),
            "per_class_support": [int(s) for s in pc_support],
            "roc_auc": self._roc_auc(refs, probs, num_labels),
            "log_loss": float(-np.mean(np.log(np.clip(probs[np.arange(len(refs)), refs], _EPS, 1.0)))),
        }
        if top_k is not None and num_labels > top_k >= 1:
            # stable sort: ties rank the lower class id first, as argmax does
            top = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
            results[f"top_{top_k}_accuracy"] = float((top == refs[:, None]).any(axis=1).mean())
        results["confusion_matrix"] = confusion_matrix(refs, preds, labels=labels).tolist()
        results["num_samples"] = int(len(refs))
        return results

    @staticmethod
    def _roc_auc(refs: np.ndarray, probs: np.ndarray, num_labels: int) -> float | None:
        """ROC-AUC, or None when some class never occurs in the references (undefined there)."""
        if len(np.unique(refs)) < num_labels or num_labels < 2:
            return None
        if num_labels == 2:
            return float(roc_auc_score(refs, probs[:, 1]))
        return float(roc_auc_score(refs, probs, multi_class="ovr", average="macro", labels=list(range(num_labels))))
