"""Semantic segmentation metrics from predicted and true label maps: IoU per class, mean IoU, pixel accuracy."""
from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = (
    "Intersection over union of every class and their mean, pixel accuracy and per-class accuracy of a "
    "semantic segmentation, accumulated over all pixels of all images (one confusion matrix), as in "
    "mmsegmentation and transformers' mean_iou."
)

_KWARGS_DESCRIPTION = """
Args:
    predictions: per image, an HxW map of predicted class ids.
    references: per image, an HxW map of true class ids, same size as its prediction.
    num_labels: number of classes; ids outside [0, num_labels) in references are ignored too.
    ignore_index: reference value whose pixels are left out of every score (default 255).
Returns:
    mean_iou: mean over the classes that occur (in references or predictions) of TP / (TP + FP + FN);
    per_class_iou: one value per class, None for a class that occurs in neither;
    pixel_accuracy: correct / counted pixels; mean_accuracy: mean over the classes present in the
    references of their recall; per_class_accuracy (None for a class absent from the references);
    confusion_matrix (rows = true, columns = predicted; pixel counts); num_pixels (counted pixels).
"""


def confusion(prediction: np.ndarray, reference: np.ndarray, num_labels: int, ignore_index: int) -> np.ndarray:
    """num_labels x num_labels pixel counts (rows = true) of one image, ignored pixels left out."""
    prediction, reference = np.asarray(prediction).ravel(), np.asarray(reference).ravel()
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction has {prediction.size} pixels, reference {reference.size}")
    keep = (reference != ignore_index) & (reference >= 0) & (reference < num_labels)
    pairs = reference[keep].astype(np.int64) * num_labels + np.clip(prediction[keep], 0, num_labels - 1)
    return np.bincount(pairs, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def scores(matrix: np.ndarray) -> dict:
    """IoU and accuracy figures of a confusion matrix."""
    true_positive = np.diag(matrix).astype(np.float64)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    union = support + predicted - true_positive
    iou = np.where(union > 0, true_positive / np.maximum(union, 1), np.nan)
    accuracy = np.where(support > 0, true_positive / np.maximum(support, 1), np.nan)
    total = matrix.sum()
    as_list = lambda values: [None if np.isnan(v) else float(v) for v in values]
    return {
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "pixel_accuracy": float(true_positive.sum() / total) if total else float("nan"),
        "mean_accuracy": float(np.nanmean(accuracy)) if np.isfinite(accuracy).any() else float("nan"),
        "per_class_iou": as_list(iou),
        "per_class_accuracy": as_list(accuracy),
        "confusion_matrix": matrix.tolist(),
        "num_pixels": int(total),
    }


class MeanIoU(evaluate.Metric):
    """Mean IoU and friends; see the module's inputs description."""

    def _info(self) -> evaluate.MetricInfo:
        label_map = datasets.Sequence(datasets.Sequence(datasets.Value("int16")))  # any HxW, per image
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": label_map, "references": label_map}),
            reference_urls=["https://github.com/open-mmlab/mmsegmentation"],
        )

    def _compute(self, predictions, references, num_labels: int | None = None, ignore_index: int = 255) -> dict:
        predictions = [np.asarray(p) for p in predictions]
        references = [np.asarray(r) for r in references]
        if num_labels is None:
            present = [r[r != ignore_index] for r in references] + list(predictions)
            num_labels = int(max(a.max(initial=-1) for a in present)) + 1
        matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
        for prediction, reference in zip(predictions, references):
            matrix += confusion(prediction, reference, num_labels, ignore_index)
        return scores(matrix)
