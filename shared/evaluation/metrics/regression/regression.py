"""Regression metrics: errors, R^2 and Pearson/Spearman correlations (scikit-learn and scipy)."""
from __future__ import annotations

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

_DESCRIPTION = "Mean squared/absolute error, R^2 and Pearson/Spearman correlation of scalar predictions."

_KWARGS_DESCRIPTION = """
Args:
    predictions: per example, the predicted value (float).
    references: per example, the true value (float).
Returns:
    mse, rmse, mae, r2 (None when the references are constant or there are fewer than 2 examples),
    pearson, spearman (None when either side is constant or there are fewer than 2 examples),
    num_samples.
"""


def _is_constant(values: np.ndarray) -> bool:
    return len(values) < 2 or bool(np.all(values == values[0]))


class Regression(evaluate.Metric):
    """Regression metrics; see the module's inputs description."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            # float32, not int64: int64 would silently truncate 0.5 to 0
            features=datasets.Features(
                {"predictions": datasets.Value("float32"), "references": datasets.Value("float32")}
            ),
            reference_urls=["https://docs.scipy.org/doc/scipy/reference/stats.html"],
        )

    def _compute(self, predictions, references) -> dict:
        preds = np.asarray(predictions, dtype=np.float64)
        refs = np.asarray(references, dtype=np.float64)
        if len(preds) == 0:
            raise ValueError("no predictions to evaluate")
        mse = float(mean_squared_error(refs, preds))
        # correlations and R^2 are undefined (scipy warns, returns nan) when a side has no variance
        undefined_corr = _is_constant(preds) or _is_constant(refs)
        return {
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mae": float(mean_absolute_error(refs, preds)),
            "r2": None if _is_constant(refs) else float(r2_score(refs, preds)),
            "pearson": None if undefined_corr else float(pearsonr(preds, refs).statistic),
            "spearman": None if undefined_corr else float(spearmanr(preds, refs).statistic),
            "num_samples": int(len(refs)),
        }
