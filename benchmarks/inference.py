"""Latency and throughput of saved models through `transformers.pipeline` on CPU.

    python -m benchmarks inference --models text_classification=outputs/text_classification/run/best ...

For each model: batch 1 (median and p95 latency per input) and batch 32 (inputs per second), for the
eager model, `torch.compile`, and dynamic int8 quantization of the Linear layers, each with the metric it
reaches on the same validation inputs, so a speed-up is never reported without its cost.
"""
from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import write_merged_rows
from benchmarks.suite import pairs
from shared.toolkit.config import parse_config
from shared.evaluation.scoring import load_metric
from shared.task import get_task
from tasks.semantic_segmentation.data import IGNORE


def _classification(rows, outputs, labels, _data) -> dict:
    hits = [out[0]["label"] == labels[row["label"]] for row, out in zip(rows, outputs)]
    return {"accuracy": sum(hits) / len(hits)}


def _qa(rows, outputs, _labels, _data) -> dict:
    predictions = [{"id": r["id"], "prediction_text": o["answer"]} for r, o in zip(rows, outputs)]
    references = [{"id": r["id"], "answers": r["answers"]} for r in rows]
    return {"f1": load_metric("squad").compute(predictions=predictions, references=references)["f1"]}


def _translation(rows, outputs, _labels, _data) -> dict:
    predictions = [o[0]["translation_text"] if isinstance(o, list) else o["translation_text"] for o in outputs]
    return {"bleu": load_metric("sacrebleu").compute(predictions=predictions,
                                                     references=[[r["target"]] for r in rows])["bleu"]}


def _detection(rows, outputs, labels, _data) -> dict:
    """COCO mAP@0.5 of the pipeline's boxes (pixels, corners) against the COCO-format ground truth (x, y, w, h)."""
    index = {name: i for i, name in enumerate(labels)}
    corners = ("xmin", "ymin", "xmax", "ymax")
    predictions = [{"boxes": [[d["box"][k] for k in corners] for d in out] or np.zeros((0, 4)),
                    "scores": [d["score"] for d in out], "labels": [index[d["label"]] for d in out]} for out in outputs]
    references = [{"boxes": [[x, y, x + w, y + h] for x, y, w, h in r["objects"]["bbox"]],
                   "labels": r["objects"]["category"]} for r in rows]
    found = load_metric("detection").compute(predictions=predictions, references=references, num_labels=len(labels),
                                             box_format="xyxy")
    return {"map_50": found["map_50"]}


def _segmentation(rows, outputs, labels, data) -> dict:
    """Mean IoU of the pipeline's per-label masks, put back together into one label map per image."""
    predicted, truth = [], []
    for row, segments in zip(rows, outputs):
        ids = data.table[torch.from_numpy(np.asarray(row["mask"], dtype=np.int64))].numpy()
        label_map = np.full(ids.shape, IGNORE, dtype=np.int64)
        for segment in segments:
            label_map[np.asarray(segment["mask"]) > 0] = labels.index(segment["label"])
        predicted.append(label_map)
        truth.append(ids)
    found = load_metric("mean_iou").compute(predictions=predicted, references=truth, num_labels=len(labels),
                                            ignore_index=IGNORE)
    return {"mean_iou": found["mean_iou"]}


# task -> (pipeline input of one raw validation row, metric of the outputs, top_k-style extra call args)
ADAPTERS = {
    "text_classification": (lambda r: r["text"], _classification, {"top_k": 1}),
    "image_classification": (lambda r: r["image"].convert("RGB"), _classification, {"top_k": 1}),
    "question_answering": (lambda r: {"question": r["question"], "context": r["context"]}, _qa, {}),
    "translation": (lambda r: r["source"], _translation, {}),
    "object_detection": (lambda r: r["image"].convert("RGB"), _detection, {"threshold": 0.0}),
    "semantic_segmentation": (lambda r: r["image"].convert("RGB"), _segmentation, {}),
}


def _validation_rows(task_name: str, samples: int) -> tuple[list[dict], list[str] | None, object]:
    """The first validation rows of the task's benchmark data, its label names, and the task that loaded them."""
    task_class, pair = get_task(task_name), pairs()[task_name]
    cfg = parse_config(task_class.config_class, ["--config", pair.recipe, *pair.data_flags, "--output_dir", "/tmp/unused"])
    task = task_class(cfg)
    data = task.load_data()
    rows = [data["validation"][i] for i in range(min(samples, len(data["validation"])))]
    return rows, data, task


def _variants(model: torch.nn.Module):
    yield "eager fp32", model
    yield "torch.compile", torch.compile(model)
    quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    yield "dynamic int8", quantized


def _measure(pipe, inputs: list, call_args: dict) -> tuple[list, dict]:
    # warm-up outside the clock, over every batch shape the timed calls will see (torch.compile compiles each)
    pipe(inputs[:1], batch_size=1, **call_args)
    pipe(inputs, batch_size=32, **call_args)
    latencies, outputs = [], []
    for item in inputs:
        started = time.perf_counter()
        outputs.append(pipe(item, **call_args))
        latencies.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    pipe(inputs, batch_size=32, **call_args)
    batched = len(inputs) / (time.perf_counter() - started)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 20 else max(latencies)
    return outputs, {"batch1_p50_ms": round(statistics.median(latencies), 2), "batch1_p95_ms": round(p95, 2),
                     "batch32_per_s": round(batched, 2)}


def benchmark_model(task_name: str, model_dir: str, samples: int) -> list[dict]:
    from transformers import pipeline

    to_input, score, call_args = ADAPTERS[task_name]
    rows, data, task = _validation_rows(task_name, samples)
    labels = data.labels
    inputs = [to_input(r) for r in rows]
    pipe = pipeline(task.pipeline_tag, model=model_dir, device=-1)
    eager = pipe.model
    size_mb = sum(p.numel() * p.element_size() for p in eager.parameters()) / 2**20
    results = []
    for name, model in _variants(eager):
        pipe.model = model
        try:
            outputs, timing = _measure(pipe, inputs, call_args)
            metric = {k: round(v, 4) for k, v in score(rows, outputs, labels, data).items()}
        except Exception as err:  # a variant that does not apply to this architecture is reported, not hidden
            timing, metric = {"error": f"{type(err).__name__}: {str(err)[:120]}"}, {}
        results.append({"task": task_name, "variant": name, **timing, **metric, "samples": len(inputs),
                        "fp32_params_mb": round(size_mb, 1)})
    pipe.model = eager
    return results


def run_inference(models: dict[str, str], samples: int) -> Path:
    torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
    command = "python -m benchmarks inference --models " + " ".join(f"{k}={v}" for k, v in models.items())
    rows = []
    for task_name, model_dir in models.items():
        rows += benchmark_model(task_name, model_dir, samples)
        path = _write(rows, command)  # after each model, so a long run keeps what it measured
    return path


COLUMNS = ["task", "variant", "batch1_p50_ms", "batch1_p95_ms", "batch32_per_s", "accuracy", "f1", "bleu", "map_50",
           "mean_iou", "samples", "fp32_params_mb", "error"]


def _write(rows: list[dict], command: str) -> Path:
    return write_merged_rows("inference", rows, command, COLUMNS)
