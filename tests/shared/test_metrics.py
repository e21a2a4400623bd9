"""The local evaluate metrics checked against values worked out by hand on tiny inputs."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before evaluate/datasets are imported: the hub must never be asked
os.environ["HF_DATASETS_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from shared.evaluation.scoring import METRICS_DIR, available_metrics, load_metric, prefixed, split_scalars  # noqa: E402

approx = pytest.approx  # inputs pass through float32 features, so compare at float32 precision
REL = 1e-6

# 6 samples, 3 classes.              argmax  true
CLS_PROBS = [
    [0.7, 0.2, 0.1],  # sample 0       0      0   right
    [0.3, 0.6, 0.1],  # sample 1       1      0   wrong
    [0.1, 0.8, 0.1],  # sample 2       1      1   right
    [0.2, 0.5, 0.3],  # sample 3       1      1   right
    [0.1, 0.2, 0.7],  # sample 4       2      2   right
    [0.5, 0.1, 0.4],  # sample 5       0      2   wrong
]
CLS_REFS = [0, 0, 1, 1, 2, 2]


def test_available_metrics_are_the_local_modules():
    assert available_metrics() == ["chrf", "classification", "detection", "mean_iou", "multilabel", "regression",
                                   "sacrebleu", "seqeval", "squad"]
    assert METRICS_DIR.is_dir()


def test_unknown_metric_names_the_local_ones():
    with pytest.raises(ValueError, match="unknown metric 'accuracy'.*classification.*regression"):
        load_metric("accuracy")


def test_classification_hand_computed():
    result = load_metric("classification").compute(predictions=CLS_PROBS, references=CLS_REFS)
    # 4 of 6 right
    assert result["accuracy"] == approx(4 / 6)
    # rows = true, cols = predicted: true 0 -> {0, 1}; true 1 -> {1, 1}; true 2 -> {2, 0}
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # class 0: TP 1, predicted 2, support 2 -> P 1/2, R 1/2, F1 1/2
    # class 1: TP 2, predicted 3, support 2 -> P 2/3, R 1,   F1 2*(2/3)/(5/3) = 4/5
    # class 2: TP 1, predicted 1, support 2 -> P 1,   R 1/2, F1 2*(1/2)/(3/2) = 2/3
    assert result["per_class_precision"] == approx([1 / 2, 2 / 3, 1.0])
    assert result["per_class_recall"] == approx([1 / 2, 1.0, 1 / 2])
    assert result["per_class_f1"] == approx([1 / 2, 4 / 5, 2 / 3])
    assert result["per_class_support"] == [2, 2, 2]
    assert result["precision"] == approx(13 / 18)  # (1/2 + 2/3 + 1) / 3
    assert result["recall"] == approx(2 / 3)  # (1/2 + 1 + 1/2) / 3
    assert result["f1"] == approx(59 / 90)  # (1/2 + 4/5 + 2/3) / 3
    assert result["f1_weighted"] == approx(59 / 90)  # equal supports: weighted == macro
    # one-vs-rest AUC = fraction of (positive, negative) pairs ranked right:
    # class 0: positives 0.7, 0.3 vs negatives 0.1 0.2 0.1 0.5 -> 4 + 3 = 7/8
    # class 1: positives 0.8, 0.5 vs negatives 0.2 0.6 0.2 0.1 -> 4 + 3 = 7/8
    # class 2: positives 0.7, 0.4 vs negatives 0.1 0.1 0.1 0.3 -> 4 + 4 = 8/8
    assert result["roc_auc"] == approx((7 / 8 + 7 / 8 + 1) / 3, rel=REL)
    p_true = np.array([0.7, 0.3, 0.8, 0.5, 0.7, 0.4])
    assert result["log_loss"] == approx(-np.mean(np.log(p_true)), rel=REL)
    assert "top_5_accuracy" not in result  # 3 classes: top-5 is trivially 1
    assert result["num_samples"] == 6


def test_classification_binary_roc_auc_counts_ordered_pairs():
    p_pos = [0.1, 0.4, 0.8, 0.35, 0.8, 0.9]
    refs = [0, 0, 0, 1, 1, 1]
    # positive 0.35 beats 0.1 -> 1; 0.8 beats 0.1, 0.4 and ties 0.8 -> 2.5; 0.9 beats all -> 3
    expected_auc = (1 + 2.5 + 3) / 9
    metric = load_metric("classification")
    result = metric.compute(predictions=[[1 - p, p] for p in p_pos], references=refs)
    assert result["roc_auc"] == approx(expected_auc, rel=REL)
    # argmax: 0 0 1 0 1 1 (0.8 > 0.2) -> right: 1 1 0 0 1 1
    assert result["accuracy"] == approx(4 / 6)
    assert result["confusion_matrix"] == [[2, 1], [1, 2]]
    p_true = np.array([0.9, 0.6, 0.2, 0.35, 0.8, 0.9])
    assert result["log_loss"] == approx(-np.mean(np.log(p_true)), rel=REL)
    # a sigmoid head's single probability reads the same as [1 - p, p]
    single = metric.compute(predictions=[[p] for p in p_pos], references=refs)
    assert single["roc_auc"] == approx(expected_auc, rel=REL)
    assert single["accuracy"] == result["accuracy"]


def test_classification_roc_auc_is_none_when_a_class_is_missing():
    result = load_metric("classification").compute(predictions=CLS_PROBS[:4], references=CLS_REFS[:4])
    assert result["roc_auc"] is None  # class 2 never occurs in the references
    assert result["per_class_support"] == [2, 2, 0]
    assert len(result["per_class_f1"]) == 3
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    assert result["accuracy"] == approx(3 / 4)


def test_classification_top_k_only_when_classes_exceed_k():
    row = [0.3, 0.25, 0.2, 0.15, 0.07, 0.03]  # class 5 ranks 6th, class 4 ranks 5th
    refs = [0, 4, 5]
    metric = load_metric("classification")
    result = metric.compute(predictions=[row] * 3, references=refs)
    assert result["top_5_accuracy"] == approx(2 / 3)  # 0 and 4 are in the top 5, 5 is not
    result = metric.compute(predictions=[row] * 3, references=refs, top_k=2)
    assert "top_5_accuracy" not in result
    assert result["top_2_accuracy"] == approx(1 / 3)  # only class 0 is in the top 2
    five = load_metric("classification").compute(predictions=[row[:5]] * 2, references=[0, 4])
    assert "top_5_accuracy" not in five


def test_classification_log_loss_clips_a_zero_probability():
    result = load_metric("classification").compute(predictions=[[1.0, 0.0], [0.5, 0.5]], references=[1, 0])
    assert result["log_loss"] == approx(-(np.log(1e-15) + np.log(0.5)) / 2, rel=REL)


def test_classification_rejects_bad_inputs():
    metric = load_metric("classification")
    with pytest.raises(ValueError, match="num_labels"):
        metric.compute(predictions=CLS_PROBS, references=CLS_REFS, num_labels=4)
    with pytest.raises(ValueError, match="class ids"):
        metric.compute(predictions=CLS_PROBS, references=[0, 0, 1, 1, 2, 3])
    with pytest.raises(ValueError, match="softmax"):
        metric.compute(predictions=[[2.0, -1.0], [0.1, 0.3]], references=[0, 1])


def test_add_batch_over_two_batches_equals_one_compute():
    metric = load_metric("classification")
    metric.add_batch(predictions=CLS_PROBS[:2], references=CLS_REFS[:2])
    metric.add_batch(predictions=CLS_PROBS[2:], references=CLS_REFS[2:])
    batched = metric.compute()
    assert batched == load_metric("classification").compute(predictions=CLS_PROBS, references=CLS_REFS)
    regression = load_metric("regression")
    regression.add_batch(predictions=[0.5, 1.5], references=[0.25, 1.0])
    regression.add_batch(predictions=[2.5], references=[3.0])
    whole = load_metric("regression").compute(predictions=[0.5, 1.5, 2.5], references=[0.25, 1.0, 3.0])
    assert regression.compute() == whole


def test_regression_against_numpy_formulas():
    preds = [2.5, 0.0, 2.0, 8.0]
    refs = [3.0, -0.5, 2.0, 7.0]
    result = load_metric("regression").compute(predictions=preds, references=refs)
    p, r = np.array(preds), np.array(refs)
    assert result["mse"] == approx(np.mean((p - r) ** 2))  # (0.25 + 0.25 + 0 + 1) / 4 = 0.375
    assert result["mse"] == approx(0.375)
    assert result["rmse"] == approx(np.sqrt(0.375))
    assert result["mae"] == approx(0.5)  # (0.5 + 0.5 + 0 + 1) / 4
    assert result["r2"] == approx(1 - np.sum((r - p) ** 2) / np.sum((r - r.mean()) ** 2))
    assert result["pearson"] == approx(np.corrcoef(p, r)[0, 1], rel=REL)
    assert result["spearman"] == approx(1.0)  # both rank as 3 1 2 4
    assert result["num_samples"] == 4


def test_regression_keeps_fractions():
    # declared int64, these would become 0, 1, 2 vs 0, 1, 3 and the errors would change
    result = load_metric("regression").compute(predictions=[0.5, 1.5, 2.5], references=[0.25, 1.0, 3.0])
    assert result["mae"] == approx((0.25 + 0.5 + 0.5) / 3)
    assert result["mse"] == approx((0.0625 + 0.25 + 0.25) / 3)


def test_regression_undefined_correlations_are_none():
    metric = load_metric("regression")
    constant_preds = metric.compute(predictions=[1.0, 1.0, 1.0], references=[1.0, 2.0, 3.0])
    assert constant_preds["pearson"] is None and constant_preds["spearman"] is None
    assert constant_preds["r2"] == approx(1 - 5 / 2)  # SSres = 0 + 1 + 4, SStot = 1 + 0 + 1
    constant_refs = metric.compute(predictions=[1.0, 2.0, 3.0], references=[2.0, 2.0, 2.0])
    assert constant_refs["pearson"] is None and constant_refs["spearman"] is None
    assert constant_refs["r2"] is None
    assert constant_refs["mse"] == approx(2 / 3)


# 4 samples, 3 labels; at threshold 0.5 the predictions are shown on the right.
ML_PROBS = [
    [0.9, 0.2, 0.6],  # refs 1 0 1   preds 1 0 1   exact
    [0.1, 0.4, 0.3],  # refs 0 1 0   preds 0 0 0   misses label 1
    [0.8, 0.7, 0.55],  # refs 1 1 0  preds 1 1 1   extra label 2
    [0.3, 0.1, 0.45],  # refs 0 0 1  preds 0 0 0   misses label 2
]
ML_REFS = [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]]


def test_multilabel_hand_computed():
    result = load_metric("multilabel").compute(predictions=ML_PROBS, references=ML_REFS)
    # label 0: TP 2 FP 0 FN 0 -> F1 1; label 1: TP 1 FP 0 FN 1 -> F1 2/3; label 2: TP 1 FP 1 FN 1 -> F1 1/2
    assert result["per_label_f1"] == approx([1.0, 2 / 3, 1 / 2])
    assert result["per_label_support"] == [2, 2, 2]
    # micro: TP 4, FP 1, FN 2 -> P 4/5, R 4/6, F1 2*4 / (2*4 + 1 + 2) = 8/11
    assert result["precision_micro"] == approx(4 / 5)
    assert result["recall_micro"] == approx(2 / 3)
    assert result["f1_micro"] == approx(8 / 11)
    assert result["f1_macro"] == approx(13 / 18)  # (1 + 2/3 + 1/2) / 3
    assert result["precision_macro"] == approx(5 / 6)  # (1 + 1 + 1/2) / 3
    assert result["recall_macro"] == approx(2 / 3)  # (1 + 1/2 + 1/2) / 3
    assert result["subset_accuracy"] == approx(1 / 4)
    # AP: labels 0 and 1 rank both positives first -> 1; label 2 ranks pos 0.6, neg 0.55, pos 0.45
    # -> 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert result["map"] == approx((1 + 1 + 5 / 6) / 3)
    assert result["num_samples"] == 4


def test_multilabel_per_label_threshold_and_labels_without_positives():
    metric = load_metric("multilabel")
    result = metric.compute(predictions=ML_PROBS, references=ML_REFS, threshold=[0.5, 0.35, 0.58])
    # label 1 now predicted for samples 1 and 2 (0.4, 0.7) -> F1 1; label 2 only for sample 0 -> F1 2/3
    assert result["per_label_f1"] == approx([1.0, 1.0, 2 / 3])
    refs = [[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1]]  # label 1 has no positive: skipped by mAP
    result = metric.compute(predictions=ML_PROBS, references=refs)
    # label 0: positives 0.9, 0.8 rank first -> 1; label 2: pos 0.45 and 0.3 below negs 0.6 0.55 -> (1/3 + 2/4) / 2
    assert result["map"] == approx((1 + (1 / 3 + 2 / 4) / 2) / 2)
    none_positive = metric.compute(predictions=ML_PROBS[:1], references=[[0, 0, 0]])
    assert none_positive["map"] is None


def test_split_scalars_and_prefixed():
    torch = pytest.importorskip("torch")
    metrics = {
        "accuracy": np.float64(0.5),
        "num_samples": 6,
        "loss": np.array(0.25, dtype=np.float32),
        "tensor": torch.tensor(1.5),
        "roc_auc": None,
        "per_class_f1": [0.5, 0.8],
        "confusion_matrix": [[1, 0], [0, 1]],
        "name": "x",
    }
    scalars, others = split_scalars(metrics)
    assert scalars == {"accuracy": 0.5, "num_samples": 6.0, "loss": 0.25, "tensor": 1.5}
    assert all(type(v) is float for v in scalars.values())
    assert others == {"roc_auc": None, "per_class_f1": [0.5, 0.8], "confusion_matrix": [[1, 0], [0, 1]], "name": "x"}
    assert prefixed({"accuracy": 0.5, "f1": 0.4}, "eval") == {"eval/accuracy": 0.5, "eval/f1": 0.4}
    assert prefixed({"accuracy": 0.5}, "eval/") == {"eval/accuracy": 0.5}
    assert prefixed({"accuracy": 0.5}, "") == {"accuracy": 0.5}


# ---------------------------------------------------------------- mean_iou (semantic segmentation)
# Two label maps of different sizes, 3 classes, 255 = ignored.
#   image A  prediction [[0, 1], [1, 1]]   reference [[0, 1], [255, 0]]
#   image B  prediction [[2, 2, 0], [0, 0, 0]]  reference [[2, 0, 0], [0, 0, 255]]
# Counted pixels (reference != 255): A 3, B 5 -> 8. Confusion (rows true, columns predicted):
#   true 0: predicted 0 in A(0,0), B(0,2), B(1,0), B(1,1) = 4; predicted 1 in A(1,1) = 1; predicted 2 in B(0,1) = 1
#   true 1: A(0,1) -> 1;  true 2: B(0,0) -> 2
# IoU: class 0 4 / (6 + 4 - 4) = 2/3; class 1 1 / (1 + 2 - 1) = 1/2; class 2 1 / (1 + 2 - 1) = 1/2
SEG_PREDICTIONS = [np.array([[0, 1], [1, 1]]), np.array([[2, 2, 0], [0, 0, 0]])]
SEG_REFERENCES = [np.array([[0, 1], [255, 0]]), np.array([[2, 0, 0], [0, 0, 255]])]


def test_mean_iou_hand_computed():
    result = load_metric("mean_iou").compute(predictions=SEG_PREDICTIONS, references=SEG_REFERENCES, num_labels=3,
                                             ignore_index=255)
    assert result["per_class_iou"] == approx([2 / 3, 1 / 2, 1 / 2], rel=REL)
    assert result["mean_iou"] == approx((2 / 3 + 1 / 2 + 1 / 2) / 3, rel=REL)
    assert result["pixel_accuracy"] == approx(6 / 8, rel=REL)
    assert result["per_class_accuracy"] == approx([4 / 6, 1.0, 1.0], rel=REL)
    assert result["confusion_matrix"] == [[4, 1, 1], [0, 1, 0], [0, 0, 1]] and result["num_pixels"] == 8


def test_mean_iou_honours_another_ignore_index_and_skips_absent_classes():
    # CamVid style: 11 classes, value 11 = unlabelled. Class 3 occurs nowhere: None, and left out of the mean.
    prediction, reference = np.array([[0, 0, 1, 5]]), np.array([[0, 11, 1, 1]])
    result = load_metric("mean_iou").compute(predictions=[prediction], references=[reference], num_labels=11,
                                             ignore_index=11)
    assert result["num_pixels"] == 3 and result["pixel_accuracy"] == approx(2 / 3, rel=REL)
    assert result["per_class_iou"][:2] == approx([1.0, 0.5], rel=REL) and result["per_class_iou"][3] is None
    assert result["per_class_iou"][5] == 0.0  # predicted but never true: a counted zero
    assert result["mean_iou"] == approx((1.0 + 0.5 + 0.0) / 3, rel=REL)


def test_mean_iou_over_batches_equals_one_compute():
    metric = load_metric("mean_iou")
    for prediction, reference in zip(SEG_PREDICTIONS, SEG_REFERENCES):
        metric.add_batch(predictions=[prediction], references=[reference])
    assert metric.compute(num_labels=3)["mean_iou"] == approx((2 / 3 + 1 / 2 + 1 / 2) / 3, rel=REL)
