"""Export a trained model for CPU deployment: dynamic int8 quantization and ONNX, measured before and after.

    python -m tasks.export outputs/text_classification/<run>/best --quantize dynamic-int8 --onnx

Reads the run's config.yaml (beside best/ and last/) to rebuild the task's validation data, then writes
<model>/export/: model_int8.pt (state dict of the dynamically quantized model; load_quantized() rebuilds
it), model.onnx, and export_report.json with size, CPU latency (batch 1, median) and the main metric of
each form. ONNX goes through torch.onnx: optimum's ONNX exporter (optimum-onnx 0.1) requires
transformers < 4.58, and this project runs transformers 5.
"""
from __future__ import annotations

import copy
import dataclasses
import io
import json
import re
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader

from shared.training.checkpoint import read_training_info
from shared.toolkit.cli import EntryParser, entry_point
from shared.toolkit.config import ConfigError, parse_config
from shared.toolkit.extras import require
from shared.run import build_run
from shared.task import get_task, list_tasks

LATENCY_RUNS = 30


def _task_name(model_dir: Path, given: str | None) -> str:
    if not model_dir.is_dir():
        raise ConfigError(f"{model_dir}: no such model folder; give a run's best/ or last/ folder")
    name = given or read_training_info(model_dir).get("task")
    if not name:
        card = model_dir / "README.md"  # a model saved before training_info.json: its card's tag names the task
        match = re.search(r"tags: \[finetune-suite, (\w+)\]", card.read_text()) if card.is_file() else None
        if not match:
            raise ConfigError(f"{model_dir}: no model card naming the task; pass --task")
        name = match.group(1)
    if name not in list_tasks():
        source = "--task" if given else f"{model_dir}: task"
        raise ConfigError(f"{source} {name!r} is not a task here; known: {', '.join(list_tasks())}")
    return name


def load_run(model_dir: Path, task_name: str | None, max_eval_samples: int | None):
    """(task, metric spec, model, eval batches, raw validation split) for a saved model of a run."""
    task_class = get_task(_task_name(model_dir, task_name))
    recipe = model_dir.parent / "config.yaml"
    if not recipe.is_file():
        raise ConfigError(f"{recipe}: not found; export expects a model folder inside a run folder")
    args = ["--config", str(recipe), "--model_name_or_path", str(model_dir), "--data_report", "false"]
    if max_eval_samples is not None:  # 0 or below is refused by the option's range, not taken as "all"
        args += ["--max_eval_samples", str(max_eval_samples)]
    parsed = parse_config(task_class.config_class, args)
    # the saved model is already merged and standalone: no teacher, no adapters
    cfg = dataclasses.replace(parsed, teacher_model=None, use_peft=False)
    task = task_class(cfg)
    run = build_run(task, splits=("validation",))
    model = run.model.float().eval()
    loader = DataLoader(run.datasets["validation"], batch_size=cfg.per_device_eval_batch_size, collate_fn=run.collate)
    return task, run.metric, model, list(loader), run.data["validation"]


@torch.no_grad()
def evaluate(task, spec, model, batches, raw_eval) -> dict:
    """The task's own metrics for `model` (a torch module or an ONNX runner) on the validation batches."""
    gathered = []
    for batch in batches:
        _, predictions, references = task.eval_step(model, batch)
        as_numpy = lambda v: v.cpu().numpy() if isinstance(v, torch.Tensor) else v
        gathered.append((as_numpy(predictions), as_numpy(references)))
    spec = copy.deepcopy(spec)  # a fresh evaluate module per form measured
    return task.compute_metrics(spec, gathered, raw_eval)


def _model_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k != "labels"}


def first_example(batch: dict) -> dict:
    return {k: v[:1] for k, v in _model_inputs(batch).items() if isinstance(v, torch.Tensor)}


@torch.no_grad()
def latency_ms(model, inputs: dict) -> float:
    """Median wall time of one forward pass on one example, after warm-up runs."""
    for _ in range(3):
        model(**inputs)
    times = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        model(**inputs)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def state_dict_bytes(model: torch.nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Linear layers with int8 weights, activations quantized on the fly (torch.ao dynamic quantization)."""
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def load_quantized(model_dir: str | Path, task_name: str | None = None) -> torch.nn.Module:
    """Rebuild the int8 model written by export: the fp32 architecture, quantized, then its int8 weights."""
    from transformers import AutoConfig

    model_dir = Path(model_dir)
    task_class = get_task(_task_name(model_dir, task_name))
    cfg = parse_config(task_class.config_class, ["--config", str(model_dir.parent / "config.yaml"),
                                                 "--model_name_or_path", str(model_dir)])
    config = AutoConfig.from_pretrained(model_dir)
    labels = [config.id2label[i] for i in range(config.num_labels)]
    quantized = quantize_int8(task_class(cfg).build_model(labels).float().eval())
    quantized.load_state_dict(torch.load(model_dir / "export" / "model_int8.pt", weights_only=True))
    return quantized


class _OutputTuple(torch.nn.Module):
    """Returns the model's output tensors as a tuple (what the ONNX exporter traces), loss left out."""

    def __init__(self, model: torch.nn.Module, input_names: list[str], output_names: list[str]):
        super().__init__()
        self.model, self.input_names, self.output_names = model, input_names, output_names

    def forward(self, *inputs):  # positional: the TorchScript exporter traces positional inputs only
        outputs = self.model(**dict(zip(self.input_names, inputs)))
        return tuple(outputs[name] for name in self.output_names)


class OnnxRunner:
    """An onnxruntime session called like the model: returns an object with the same output names."""

    training = False

    def __init__(self, path: Path, input_names: list[str], output_names: list[str]):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names, self.output_names = input_names, output_names

    def __call__(self, **inputs):
        feed = {k: inputs[k].cpu().numpy() for k in self.input_names}
        values = self.session.run(self.output_names, feed)
        return SimpleNamespace(loss=None, **{k: torch.from_numpy(v) for k, v in zip(self.output_names, values)})


def export_onnx(model: torch.nn.Module, example: dict, path: Path) -> OnnxRunner:
    """torch.onnx export with a dynamic batch axis (and sequence axis for 2-D integer inputs)."""
    with torch.no_grad():
        outputs = model(**example)
    names = [k for k, v in outputs.items() if k != "loss" and isinstance(v, torch.Tensor)]
    inputs = list(example)
    dynamic = {k: ({0: "batch", 1: "sequence"} if v.dim() == 2 else {0: "batch"}) for k, v in example.items()}
    # The TorchScript-based exporter: the dynamo one needs onnxscript and rejected timm models in trials.
    torch.onnx.export(_OutputTuple(model, inputs, names), tuple(example.values()), str(path), input_names=inputs,
                      output_names=names, dynamic_axes=dynamic, opset_version=17, dynamo=False)
    return OnnxRunner(path, inputs, names)


def export(model_dir: str | Path, quantize: str | None = "dynamic-int8", onnx: bool = True,
           task_name: str | None = None, max_eval_samples: int | None = None) -> dict:
    """Write the exported forms and export_report.json; return the report."""
    model_dir = Path(model_dir)
    task, spec, model, batches, raw_eval = load_run(model_dir, task_name, max_eval_samples)
    out = model_dir / "export"
    out.mkdir(exist_ok=True)
    example = first_example(batches[0])
    main = spec.main
    measure = lambda m, size: {"size_mb": round(size / 2 ** 20, 3), "latency_ms_batch1": round(latency_ms(m, example), 3),
                               main: evaluate(task, spec, m, batches, raw_eval)[main]}
    report = {"model": str(model_dir), "task": task.name, "main_metric": main, "torch_threads": torch.get_num_threads(),
              "validation_rows": len(raw_eval), "fp32": measure(model, state_dict_bytes(model))}
    if quantize == "dynamic-int8":
        int8 = quantize_int8(model)
        torch.save(int8.state_dict(), out / "model_int8.pt")
        report["dynamic_int8"] = measure(int8, (out / "model_int8.pt").stat().st_size)
    if onnx:
        runner = export_onnx(model, example, out / "model.onnx")
        report["onnx"] = measure(runner, (out / "model.onnx").stat().st_size)
    (out / "export_report.json").write_text(json.dumps(report, indent=1, default=float))
    for form in ("fp32", "dynamic_int8", "onnx"):
        if form in report:
            r = report[form]
            print(f"{form:>13}: {r['size_mb']:8.2f} MB  {r['latency_ms_batch1']:8.2f} ms/example  {main} {r[main]:.4f}")
    print(f"written to {out}")
    return report


@entry_point  # a ConfigError or DataError ends as one `error: ` line and exit 2, as in train.py and predict.py
def main(argv: list[str] | None = None) -> dict:
    parser = EntryParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", help="A best/ or last/ folder of a run (its run folder holds config.yaml).")
    parser.add_argument("--quantize", choices=["dynamic-int8", "none"], default="dynamic-int8")
    parser.add_argument("--onnx", action="store_true", help="Also export model.onnx and measure it in onnxruntime.")
    parser.add_argument("--task", default=None, help="Task name; default: read from training_info.json (or an older model card).")
    parser.add_argument("--max_eval_samples", type=int, default=None)
    args = parser.parse_args(argv)
    quantize = None if args.quantize == "none" else args.quantize
    if args.onnx:  # the [export] extra: checked before any model is loaded
        require("onnx", "export", "--onnx")
        require("onnxruntime", "export", "--onnx")
    return export(args.model_dir, quantize, args.onnx, args.task, args.max_eval_samples)
