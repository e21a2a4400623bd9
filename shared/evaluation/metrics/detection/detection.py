"""COCO box detection metrics (pycocotools under evaluate): mAP, mAP@0.5, mAP@0.75, per-class AP and recall."""
from __future__ import annotations

import contextlib
import io

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "COCO-style average precision and recall of box detections, computed by pycocotools' COCOeval."

_KWARGS_DESCRIPTION = """
Args:
    predictions: per image, {"boxes": [[4 numbers], ...], "scores": [...], "labels": [class index, ...]}.
    references: per image, {"boxes": [[4 numbers], ...], "labels": [class index, ...]}.
        Boxes of both are in pixels of the ORIGINAL image (the size the annotations were made on).
    box_format: "xyxy" (x1, y1, x2, y2; what post_process_object_detection returns), "xywh" (COCO JSON)
        or "cxcywh".
    num_labels: number of classes; per-class lists have this length. Default: the largest label seen + 1.
    max_detections: detections kept per image, highest scores first (COCO: 100).
Returns:
    map (AP averaged over IoU 0.50:0.95), map_50, map_75, map_small, map_medium, map_large, mar_1, mar_10,
    mar_100 (average recall with at most 1/10/100 detections per image), per_class_ap, per_class_ap_50 and
    per_class_recall (None for a class with no ground truth), pr_curve_50 (per class: precision at the 101 COCO
    recall points, IoU 0.5; None where undefined), num_images, num_ground_truth, num_detections.
    COCO scores a class with no ground truth as undefined (-1); such classes are left out of the means.
"""

_BOX = datasets.List(datasets.List(datasets.Value("float32")))


def _to_xywh(boxes: np.ndarray, box_format: str) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if box_format == "xywh":
        return boxes
    if box_format == "xyxy":
        return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    if box_format == "cxcywh":
        return np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, 2:]], axis=1)
    raise ValueError(f"unknown box_format {box_format!r}; use xyxy, xywh or cxcywh")


def _defined(values: np.ndarray) -> float | None:
    """Mean of the entries COCO marks as defined (> -1), or None when there are none."""
    values = values[values > -1]
    return float(values.mean()) if values.size else None


class Detection(evaluate.Metric):
    """COCO box metrics; see the module's inputs description."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS_DESCRIPTION,
            # float32 boxes and scores: int64 features would silently truncate them
            features=datasets.Features({
                "predictions": {"boxes": _BOX, "scores": datasets.List(datasets.Value("float32")),
                                "labels": datasets.List(datasets.Value("int64"))},
                "references": {"boxes": _BOX, "labels": datasets.List(datasets.Value("int64"))},
            }),
            reference_urls=["https://cocodataset.org/#detection-eval"],
        )

    def _compute(self, predictions, references, box_format: str = "xyxy", num_labels: int | None = None,
                 max_detections: int = 100) -> dict:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        labels_seen = [int(v) for item in list(predictions) + list(references) for v in item["labels"]]
        num_labels = int(num_labels) if num_labels is not None else max(labels_seen, default=-1) + 1
        if labels_seen and (min(labels_seen) < 0 or max(labels_seen) >= num_labels):
            raise ValueError(f"labels must be class indices in [0, {num_labels}), got {min(labels_seen)}..{max(labels_seen)}")
        images, truth, found = [], [], []
        for image_id, (pred, ref) in enumerate(zip(predictions, references)):
            images.append({"id": image_id})
            for box, label in zip(_to_xywh(ref["boxes"], box_format), ref["labels"]):
                truth.append({"id": len(truth) + 1, "image_id": image_id, "category_id": int(label),
                              "bbox": box.tolist(), "area": float(box[2] * box[3]), "iscrowd": 0})
            order = np.argsort(-np.asarray(pred["scores"], dtype=np.float64), kind="stable")[:max_detections]
            boxes = _to_xywh(pred["boxes"], box_format)
            for k in order:
                found.append({"image_id": image_id, "category_id": int(pred["labels"][k]),
                              "bbox": boxes[k].tolist(), "score": float(pred["scores"][k])})
        counts = {"num_images": len(images), "num_ground_truth": len(truth), "num_detections": len(found)}
        if not found or not truth:
            return {**_empty(num_labels, has_truth=bool(truth)), **counts}
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and its summary table
            gt = COCO()
            gt.dataset = {"images": images, "annotations": truth,
                          "categories": [{"id": i} for i in range(num_labels)]}
            gt.createIndex()
            evaluation = COCOeval(gt, gt.loadRes(found), iouType="bbox")
            evaluation.params.maxDets = [1, 10, max_detections]
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        return {**_summary(evaluation, num_labels), **counts}


def _summary(evaluation, num_labels: int) -> dict:
    stats = evaluation.stats  # COCO's 12 numbers; -1 where undefined
    names = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100",
             "mar_small", "mar_medium", "mar_large"]
    results = {name: (float(v) if v > -1 else None) for name, v in zip(names, stats)}
    precision = evaluation.eval["precision"]  # [IoU thresholds, recall points, classes, areas, max dets]
    recall = evaluation.eval["recall"]  # [IoU thresholds, classes, areas, max dets]
    results["per_class_ap"] = [_defined(precision[:, :, k, 0, -1]) for k in range(num_labels)]
    results["per_class_ap_50"] = [_defined(precision[0, :, k, 0, -1]) for k in range(num_labels)]
    results["per_class_recall"] = [_defined(recall[:, k, 0, -1]) for k in range(num_labels)]
    results["pr_curve_50"] = [None if (precision[0, :, k, 0, -1] < 0).all() else
                              [max(float(p), 0.0) for p in precision[0, :, k, 0, -1]] for k in range(num_labels)]
    return results


def _empty(num_labels: int, has_truth: bool) -> dict:
    """No detections scores 0 where there is ground truth; with no ground truth every score is undefined."""
    value = 0.0 if has_truth else None
    names = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100",
             "mar_small", "mar_medium", "mar_large"]
    results = {name: value for name in names}
    results.update(per_class_ap=[value] * num_labels, per_class_ap_50=[value] * num_labels,
                   per_class_recall=[value] * num_labels, pr_curve_50=[None] * num_labels)
    return results
