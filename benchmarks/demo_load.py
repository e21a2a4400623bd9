"""Load test of the text-classification demo on loopback, beside the plain pipeline call on the same texts.

    python -m benchmarks.demo_load [--model outputs/text_classification/<run>/best] [--requests 50]

Starts apps/text_classification.py on 127.0.0.1 and sends --requests requests all at once (one thread
each), then the same texts one at a time: first as plain HTTP (the REST route curl and browsers use),
then through gradio_client. Then times the plain `pipeline()` call in this process on the same texts
(one call per text, and one batched call). Writes benchmarks/results/<date>-<host>-demo_load.json.
Only loopback is contacted.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import httpx

import tasks  # noqa: F401  (registers every task)
from benchmarks.common import ROOT, machine_info, write_result
from shared.serving.demo import DemoError, resolve_model
from tests.apps.server import serve

SAMPLE = ROOT / "tasks" / "text_classification" / "sample_data" / "validation.csv"


def percentiles(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
    return {"n": len(ordered), "p50_ms": round(1000 * statistics.median(ordered), 1),
            "p95_ms": round(1000 * pick(0.95), 1), "max_ms": round(1000 * ordered[-1], 1)}


def timed(fn, *args) -> tuple[float, object]:
    """(seconds, result); an exception is returned as the result, so a load test counts errors."""
    started = time.perf_counter()
    try:
        result = fn(*args)
    except Exception as err:
        result = err
    return time.perf_counter() - started, result


def http_predict(url: str) -> Callable[[str], str]:
    """A request as a browser or curl makes it: POST to the queue, read the answer from the event stream."""
    local = threading.local()

    def predict(text: str) -> str:
        client = local.__dict__.setdefault("client", httpx.Client(timeout=120))  # one connection per thread
        event = client.post(f"{url}gradio_api/call/predict", json={"data": [text]}).json()["event_id"]
        lines = client.get(f"{url}gradio_api/call/predict/{event}").text.splitlines()
        if "event: complete" not in lines:
            raise RuntimeError(f"no answer: {lines[-3:]}")
        return json.loads(lines[lines.index("event: complete") + 1][len("data: "):])[0]["label"]

    return predict


def load(predict: Callable[[str], str], texts: list[str]) -> dict:
    """Every text sent at once (one thread each), then the same texts one at a time."""
    for text in texts[:3]:  # warm-up: first calls pay for lazy imports and allocations
        predict(text)
    started = time.perf_counter()
    with ThreadPoolExecutor(len(texts)) as pool:
        concurrent = list(pool.map(lambda text: timed(predict, text), texts))
    wall = time.perf_counter() - started
    sequential = [timed(predict, text) for text in texts]
    return {"concurrent": {**percentiles([s for s, _ in concurrent]), "wall_s": round(wall, 2),
                           "requests_per_s": round(len(texts) / wall, 1)},
            "one_at_a_time": percentiles([s for s, _ in sequential]),
            "errors": [repr(r) for _, r in concurrent + sequential if isinstance(r, Exception)],
            "labels": [r if isinstance(r, str) else None for _, r in concurrent]}


def plain_pipeline(model: str, texts: list[str]) -> dict:
    from transformers import pipeline

    pipe = pipeline("text-classification", model=model, device=-1)
    pipe(texts[:3])  # same warm-up as the app
    single = [timed(pipe, text)[0] for text in texts]
    batched, results = timed(lambda: pipe(texts, batch_size=8))
    return {"one_call_per_text": percentiles(single), "one_batched_call_s": round(batched, 2),
            "batched_texts_per_s": round(len(texts) / batched, 1), "labels": [r["label"] for r in results]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default: the newest outputs/text_classification/<run>/best")
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    try:
        model = resolve_model("text_classification", args.model, ROOT / "outputs")
    except DemoError as err:
        raise SystemExit(f"error: {err}") from None
    with SAMPLE.open() as handle:
        rows = [row["text"] for row in csv.DictReader(handle)]
    texts = (rows * (args.requests // len(rows) + 1))[:args.requests]
    log = ROOT / "benchmarks" / "results" / "demo_load_app.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with serve(["apps/text_classification.py", "--model", model], log) as url:
        from gradio_client import Client

        client = Client(url, verbose=False, download_files=False)
        app = {"http": load(http_predict(url), texts),
               "gradio_client": load(lambda text: client.predict(text, api_name="/predict")["label"], texts)}
    plain = plain_pipeline(model, texts)
    # The app must answer what the model answers.
    same = all(run.pop("labels") == plain["labels"] for run in app.values())
    plain.pop("labels")
    result = {"benchmark": "demo_load", "model": model, "requests": len(texts), "app": app, "pipeline": plain,
              "labels_match_pipeline": same, "machine": machine_info()}
    for name, run in app.items():
        print(f"app via {name:13s} {len(texts)} at once: p50 {run['concurrent']['p50_ms']} ms, p95 "
              f"{run['concurrent']['p95_ms']} ms, {run['concurrent']['requests_per_s']} req/s; one at a time: p50 "
              f"{run['one_at_a_time']['p50_ms']} ms, p95 {run['one_at_a_time']['p95_ms']} ms; errors {len(run['errors'])}")
    print(f"plain pipeline, one call per text: p50 {plain['one_call_per_text']['p50_ms']} ms, p95 "
          f"{plain['one_call_per_text']['p95_ms']} ms; one batched call {plain['one_batched_call_s']} s "
          f"({plain['batched_texts_per_s']} texts/s)")
    print(f"labels match the plain pipeline: {same}\nwritten to {write_result('demo_load', result)}")


if __name__ == "__main__":
    main()
