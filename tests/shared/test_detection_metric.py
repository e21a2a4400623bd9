"""The local COCO detection metric against values worked out by hand."""
from __future__ import annotations

import pytest

from shared.evaluation.scoring import load_metric


def _compute(predictions, references, **kwargs) -> dict:
    return load_metric("detection").compute(predictions=predictions, references=references, **kwargs)


def test_one_box_at_iou_082_counts_at_seven_of_ten_thresholds():
    # ground truth 10x10; prediction 10x8.2 inside it: IoU 0.82, a match at IoU 0.50, 0.55, ..., 0.80 (7 of 10)
    result = _compute([{"boxes": [[0, 0, 10, 8.2]], "scores": [0.9], "labels": [0]}],
                      [{"boxes": [[0, 0, 10, 10]], "labels": [0]}], num_labels=2)
    assert result["map_50"] == pytest.approx(1.0) and result["map_75"] == pytest.approx(1.0)
    assert result["map"] == pytest.approx(0.7)
    assert result["mar_100"] == pytest.approx(0.7)
    assert result["per_class_ap"][0] == pytest.approx(0.7) and result["per_class_ap"][1] is None  # no class-1 truth


def test_false_positive_ranked_first_halves_the_precision_at_full_recall():
    # two images, one object each. Detections by score: a miss (0.9), a hit (0.8), a hit (0.7).
    # Precision at recall 0.5 is 1/2, at recall 1.0 is 2/3; COCO's interpolated precision is the max to the
    # right, so 2/3 at every one of the 101 recall points: AP@0.5 = 2/3.
    predictions = [{"boxes": [[50, 50, 60, 60], [0, 0, 10, 10]], "scores": [0.9, 0.8], "labels": [0, 0]},
                   {"boxes": [[20, 20, 40, 40]], "scores": [0.7], "labels": [0]}]
    references = [{"boxes": [[0, 0, 10, 10]], "labels": [0]}, {"boxes": [[20, 20, 40, 40]], "labels": [0]}]
    result = _compute(predictions, references)
    assert result["map_50"] == pytest.approx(2 / 3, abs=1e-6)
    assert result["pr_curve_50"][0][0] == pytest.approx(2 / 3) and len(result["pr_curve_50"][0]) == 101


def test_wrong_class_and_per_class_means():
    # class 0 found exactly; class 1 predicted as class 0 at the right place: class 1 AP 0, mean AP 0.5
    predictions = [{"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "scores": [0.9, 0.8], "labels": [0, 0]}]
    references = [{"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [0, 1]}]
    result = _compute(predictions, references, num_labels=2)
    assert result["per_class_ap_50"] == pytest.approx([1.0, 0.0])
    assert result["per_class_recall"] == pytest.approx([1.0, 0.0])
    assert result["map_50"] == pytest.approx(0.5)


@pytest.mark.parametrize("box_format, prediction", [("xywh", [0, 0, 10, 10]), ("cxcywh", [5, 5, 10, 10])])
def test_box_formats_are_converted(box_format, prediction):
    truth = {"xywh": [0, 0, 10, 10], "cxcywh": [5, 5, 10, 10]}[box_format]
    result = _compute([{"boxes": [prediction], "scores": [1.0], "labels": [0]}],
                      [{"boxes": [truth], "labels": [0]}], box_format=box_format)
    assert result["map"] == pytest.approx(1.0)


def test_no_detections_score_zero_and_bad_labels_are_refused():
    result = _compute([{"boxes": [], "scores": [], "labels": []}], [{"boxes": [[0, 0, 5, 5]], "labels": [0]}],
                      num_labels=1)
    assert result["map"] == 0.0 and result["num_detections"] == 0
    with pytest.raises(ValueError, match="class indices"):
        _compute([{"boxes": [[0, 0, 5, 5]], "scores": [1.0], "labels": [3]}],
                 [{"boxes": [[0, 0, 5, 5]], "labels": [0]}], num_labels=2)
