"""What the predict.py tests share: running a task's predict entry in-process, resetting accelerate between runs,
comparing predict_results.json with the engine's results.json, and a run made to fail midway."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from shared.task import get_task
from shared.toolkit.cli import predict_main
from tests.helpers import launch_two_cpu_processes

ROOT = Path(__file__).resolve().parents[2]


def format_class(task: str) -> type:
    """The class of the task's prediction format (what predict.py runs through), for patching a hook."""
    return type(get_task(task).prediction_format())


def predict_file(task: str, model: Path, source: Path, output: Path, *extra: str) -> dict:
    """predict.py's entry, in this process, with the task's own format."""
    return predict_main(task, args=["--model_name_or_path", str(model), "--input", str(source), "--output", str(output),
                                    *extra])


def reset_accelerate() -> None:
    """Training and prediction each build an Accelerator in this process; accelerate keeps a singleton."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def assert_engine_metrics(run: Path, output: Path) -> None:
    """predict_results.json beside the output holds the metrics results.json has for the best model (eval_*)."""
    engine = json.loads((run / "results.json").read_text())
    predicted = json.loads((output.parent / "predict_results.json").read_text())
    shared = [k[len("predict_"):] for k in predicted if k.startswith("predict_") and f"eval_{k[8:]}" in engine
              and isinstance(predicted[k], float) and k not in ("predict_runtime", "predict_samples_per_second")]
    assert engine["main_metric"] in shared, (sorted(predicted), sorted(engine))
    for name in shared:
        assert predicted[f"predict_{name}"] == pytest.approx(engine[f"eval_{name}"], abs=1e-5), name


def assert_nothing_complete(output: Path) -> None:
    assert not output.exists()
    assert not any(p.name.startswith(f".{output.name}") for p in output.parent.iterdir()), list(output.parent.iterdir())


def fails_midway(monkeypatch, task: str, model: Path, source: Path, output: Path, *extra: str) -> None:
    """A run that dies after its first batch was written: no output, no partial file left behind."""
    fmt = format_class(task)
    calls = []
    original = fmt.records

    def records(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated failure")
        return original(self, *args)

    monkeypatch.setattr(fmt, "records", records)
    with pytest.raises(RuntimeError, match="simulated failure"):
        predict_file(task, model, source, output, "--per_device_eval_batch_size", "2", *extra)
    monkeypatch.undo()
    reset_accelerate()
    assert_nothing_complete(output)


def one_and_two_process_rows(task: str, model: Path, source: Path, folder: Path) -> tuple[list[dict], list[dict]]:
    """The CSV rows predict.py writes in this process, then under two launched CPU processes (batch 4)."""
    predict_file(task, model, source, folder / "one.csv")
    launch_two_cpu_processes(ROOT / "tasks" / task / "predict.py", [
        "--model_name_or_path", str(model), "--input", str(source), "--output", str(folder / "two.csv"),
        "--per_device_eval_batch_size", "4"])
    return tuple(list(csv.DictReader((folder / name).open())) for name in ("one.csv", "two.csv"))
