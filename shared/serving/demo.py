"""Gradio demos of saved models, built from each task's DemoSpec: one app per task, or one tab per task."""
from __future__ import annotations

import argparse
import inspect
import json
import keyword
import logging
import os
import queue
import re
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

# Before gradio is imported: with analytics off, import, launch and client calls make no outside connection.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

try:  # gradio is the [demo] extra: without it, main() and serve_all() stop with one line naming it
    import gradio as gr
except ImportError:
    gr = None

from shared.toolkit.cli import EntryParser, entry_point  # noqa: E402
from shared.toolkit.config import ConfigError  # noqa: E402
from shared.toolkit.extras import require  # noqa: E402
from shared.training.checkpoint import read_training_info  # noqa: E402
from shared.serving.examples import demo_examples  # noqa: E402
from shared.task import DemoSpec, Task, get_task, list_tasks  # noqa: E402

log = logging.getLogger(__name__)
QUEUE_SIZE = 256  # waiting requests past this get gradio's "queue is full" instead of piling up in memory
MAX_UPLOAD = "50mb"  # refused by gradio before any decoding; larger images than this are rarely photos
RESERVED_NAMES = {"api_name", "fn_index", "result_callbacks"}  # gradio_client's own keywords: no input may take them


class DemoError(ConfigError):
    """A demo cannot start (no model, or one that does not load); one line saying what to do instead. A refusal
    like any other: the entry points end with it through shared.toolkit.cli.entry_point (exit 2)."""


@dataclass
class Panel:
    """One demo: a task's spec, its loaded pipeline, and the model card shown beside it."""

    name: str
    title: str
    spec: DemoSpec
    pipe: Any
    card: str
    examples: list | None = None  # None: the spec's embedded examples
    examples_label: str = "Examples"


# ------------------------------------------------------------------ finding and loading a model
def train_command(task_name: str) -> str:
    return f"accelerate launch tasks/{task_name}/train.py"


def newest_model(task_dir: str | Path) -> Path | None:
    """The most recently written best/ folder among the runs in task_dir (outputs/<task>/<run>/best)."""
    configs = list(Path(task_dir).glob("*/best/config.json"))
    return max(configs, key=lambda p: p.stat().st_mtime).parent if configs else None


def resolve_model(task_name: str, model: str | None, models_dir: str | Path) -> str:
    """--model as given (a saved folder or a hub id), or the newest best/ under models_dir/<task>/."""
    task_dir = Path(models_dir) / task_name
    if model is None:
        found = newest_model(task_dir)
        if found is None:
            raise DemoError(f"no trained {task_name} model under {task_dir}/ (looked for <run>/best/); train one "
                            f"first with `{train_command(task_name)}`, or pass --model <folder or hub id>")
        return str(found)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise DemoError(f"--model {model}: not a saved model (no config.json); pass a run's best/ or last/ "
                            f"folder, such as {task_dir}/<run>/best")
        return str(path)
    # Hub ids are "name" or "owner/name"; anything else that does not exist was meant as a local folder.
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise DemoError(f"--model {model}: no such model folder; train a model with `{train_command(task_name)}` and "
                        f"pass the best/ folder it prints, or leave out --model to use the newest under {task_dir}/")
    return model


def load_pipeline(tag: str, model: str) -> Any:
    import torch
    from transformers import pipeline

    try:
        return pipeline(tag, model=model, device=0 if torch.cuda.is_available() else -1)
    except Exception as err:  # whatever failed (offline hub id, broken folder), the user gets one plain line
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DemoError(f"could not load {model!r} as a {tag} pipeline: {reason}; offline, pass a folder written "
                        "by training, such as outputs/<task>/<run>/best") from None


def model_card(model: str) -> str:
    """Markdown for the side panel: which model, trained on what and when, and its validation scores."""
    folder = Path(model)
    if not folder.is_dir():
        return f"### Model\nHub model `{model}`"
    info = read_training_info(folder)
    facts = _info_facts(info) if info else _card_facts(folder / "README.md")  # models saved before: the card
    names = [str(n) for n in (_read_json(folder / "config.json").get("id2label") or {}).values()]
    labels = "" if all(n.startswith("LABEL_") for n in names) else ", ".join(names)  # LABEL_i: no names given
    rows = [("folder", f"`{folder}`"), ("base model", facts.get("base_model", "")),
            ("data", facts.get("data", "")), ("trained", facts.get("trained", "")), ("labels", labels)]
    text = "### Model\n" + "".join(f"- **{k}**: {v}\n" for k, v in rows if v)
    validation = info.get("validation_metrics") if info else _read_json(folder / "eval_results.json")
    for title, metrics in (("Validation metrics", validation), ("Test metrics", info.get("test_metrics"))):
        scores = {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if scores:
            text += f"\n**{title}**\n\n| metric | value |\n|---|---|\n"
            text += "".join(f"| {k} | {_number(v)} |\n" for k, v in scores.items())
    return text


def _info_facts(info: dict) -> dict:
    """The side panel's facts from training_info.json."""
    data = info.get("data") or {}
    source = data.get("dataset_name") or ", ".join(str(v) for v in (data.get("files") or {}).values())
    trained = f"{info.get('date', '')}, {info.get('steps', '?')} optimizer steps"
    return {"base_model": info.get("base_model") or info.get("base_model_name", ""), "data": source,
            "trained": trained}


def _card_facts(path: Path) -> dict:
    """The "key: value" lines of a card written by training before training_info.json existed."""
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    pairs = (line.lstrip("- ").split(":", 1) for line in lines if ":" in line)
    return {key.strip().lower(): value.strip() for key, value in pairs}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) > 1 else f"{value:.4f}"


# ------------------------------------------------------------------ input checks and batching
def _refuse(message: str) -> gr.Error:
    """An in-page error for bad input; no traceback in the server log, since nothing went wrong there."""
    return gr.Error(message, print_exception=False)


def _check_text(text: Any, label: str, max_chars: int) -> str:
    text = "" if text is None else str(text)
    if not text.strip():
        raise _refuse(f"Please enter some text in '{label}' first.")
    if len(text) > max_chars:
        gr.Warning(f"'{label}' is {len(text):,} characters long; only the first {max_chars:,} are used.")
        text = text[:max_chars]
    return text


def _check_image(path: Any, label: str, max_side: int):
    """The upload as an RGB PIL image no larger than max_side, or a plain error saying what is wrong."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path:
        raise _refuse(f"Please upload an image in '{label}' first.")
    name = Path(str(path)).name
    try:
        with Image.open(path) as opened:
            size = opened.size
            opened.draft("RGB", (max_side, max_side))  # JPEG decodes straight at a reduced scale: far less memory
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except Image.DecompressionBombError:
        raise _refuse(f"'{name}' is too large to open safely; please upload a smaller image.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise _refuse(f"'{name}' is not an image this demo can read; please upload a PNG, JPEG, BMP, GIF or WebP "
                       "file.") from None
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side))
        gr.Warning(f"The image is {size[0]}x{size[1]} pixels; it was scaled down to {image.size[0]}x{image.size[1]}.")
    return image


def _check(component: Any, value: Any, spec: DemoSpec) -> Any:
    if isinstance(component, gr.Textbox):
        return _check_text(value, component.label or "text", spec.max_chars)
    if isinstance(component, gr.Image):
        return _check_image(value, component.label or "image", spec.max_image_side)
    return value


def _raw_image_input(component: gr.Image) -> None:
    """Make an image input hand over the uploaded file's path. gradio's own preprocessing opens every
    upload with PIL first, so a non-image would fail inside gradio with a generic message."""
    original = component.preprocess
    component.preprocess = lambda payload: payload.path if payload is not None and payload.path else original(payload)


class MicroBatcher:
    """Runs fn(rows) on the requests that arrive together, on one worker thread, one result per caller.

    Not gradio's batch=True: a batched gradio function gets no per-request event, so its gr.Warning
    notices are dropped, and one refused input fails every request batched with it. Here each request
    is checked on its own thread first; only clean rows are merged.
    """

    def __init__(self, fn: Callable[[list], list], max_batch_size: int, wait_seconds: float = 0.005):
        self.fn, self.max_batch_size, self.wait_seconds = fn, max_batch_size, wait_seconds
        self.requests: queue.Queue = queue.Queue()
        threading.Thread(target=self._serve, name="demo-batcher", daemon=True).start()

    def __call__(self, row: tuple) -> Any:
        future: Future = Future()
        self.requests.put((row, future))
        return future.result()

    def _serve(self) -> None:
        while True:
            batch = [self.requests.get()]
            try:
                while len(batch) < self.max_batch_size:
                    batch.append(self.requests.get(timeout=self.wait_seconds))
            except queue.Empty:
                pass
            self._settle(batch)

    def _settle(self, batch: list) -> None:
        try:
            outputs = list(self.fn([row for row, _ in batch]))
            if len(outputs) != len(batch):  # zip would silently leave callers waiting forever
                raise ValueError(f"predict_batch returned {len(outputs)} outputs for {len(batch)} rows")
        except Exception as err:
            if len(batch) == 1:
                batch[0][1].set_exception(err)
            else:  # one bad row must not fail the others: run each alone
                for item in batch:
                    self._settle([item])
            return
        for (_, future), output in zip(batch, outputs):
            future.set_result(output)


def parameter_names(components: list) -> list[str]:
    """The API's name for each input: its label in snake case ("Score threshold" -> score_threshold), made a
    unique Python identifier that is none of gradio_client's own keywords."""
    names: list[str] = []
    for index, component in enumerate(components):
        name = re.sub(r"\W+", "_", str(component.label or "").strip().lower()).strip("_") or f"input_{index}"
        if not name.isidentifier() or keyword.iskeyword(name) or name in RESERVED_NAMES:
            name = f"input_{name}"
        base, count = name, 2
        while name in names:
            name, count = f"{base}_{count}", count + 1
        names.append(name)
    return names


def _handler(spec: DemoSpec, pipe: Any, components: list) -> Callable:
    batcher = MicroBatcher(lambda rows: spec.predict_batch(pipe, rows), spec.max_batch_size) \
        if spec.predict_batch else None

    def handle(*values):
        checked = [_check(component, value, spec) for component, value in zip(components, values)]
        try:
            return batcher(tuple(checked)) if batcher else spec.predict(pipe, *checked)
        except gr.Error:
            raise
        except Exception as err:  # the page gets one plain line; the traceback goes to the server log
            log.exception("prediction failed")
            reason = (str(err).strip().splitlines() or [""])[0][:200]
            raise gr.Error(f"The model could not process this input ({type(err).__name__}: {reason}). "
                           "The server log has the details.", print_exception=False) from None

    # gradio names an endpoint's parameters after its function's; *values alone would show param_0, param_1
    handle.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in parameter_names(components)])
    return handle


# ------------------------------------------------------------------ building and serving
def load_panel(task: Task, model: str) -> Panel:
    spec = task.demo()
    if spec is None:
        raise DemoError(f"task {task.name} has no demo yet: its Task.demo() returns None")
    title = spec.title or task.name.replace("_", " ").capitalize()
    pipe = load_pipeline(spec.pipeline_tag, model)
    examples, label = demo_examples(task, spec, model)
    return Panel(task.name, title, spec, pipe, model_card(model), examples, label)


def _render(panel: Panel, api_name: str) -> None:
    """Inputs, buttons, outputs and examples on the left; the model card on the right."""
    spec = panel.spec
    if spec.description:
        gr.Markdown(spec.description)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            inputs = spec.inputs()
            for component in inputs:
                if isinstance(component, gr.Image):
                    _raw_image_input(component)
            with gr.Row():
                clear = gr.ClearButton(value="Clear", elem_id=f"clear-{api_name}")
                run = gr.Button("Run", variant="primary", elem_id=f"run-{api_name}")
            outputs = spec.outputs()
            examples = spec.examples if panel.examples is None else panel.examples
            if examples:
                gr.Examples(examples, inputs=inputs, cache_examples=False, label=panel.examples_label)
        with gr.Column(scale=2):
            gr.Markdown(panel.card, elem_id=f"card-{api_name}")
    clear.add(inputs + outputs)
    # Batched specs let several requests in at once so the batcher can merge them; the others run one at a time.
    run.click(_handler(spec, panel.pipe, inputs), inputs, outputs, api_name=api_name,
              concurrency_limit=spec.max_batch_size if spec.predict_batch else 1, concurrency_id=api_name)


def build_app(panels: list[Panel], title: str, tabs: bool = False, notes: str = "") -> gr.Blocks:
    """One panel as a plain page (API name "predict"), or one tab per panel (API name = the task name)."""
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f"# {title}")
        if notes:
            gr.Markdown(notes, elem_id="notes")
        for panel in panels:
            if not tabs:
                _render(panel, "predict")
                continue
            with gr.Tab(panel.title, id=panel.name):
                _render(panel, panel.name)
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, block: bool = True) -> gr.Blocks:
    """Serve on host:port only (port None: 7860 or the next free one); no server-side rendering process."""
    app.queue(max_size=QUEUE_SIZE)
    try:
        app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, ssr_mode=False,
                   max_file_size=MAX_UPLOAD)
    except OSError as err:  # the port is taken, or the host is not this machine's
        raise DemoError(f"--host {host} --port {port}: cannot serve there ({str(err).splitlines()[0]})") from None
    return app


def token_limit(pipe) -> int:
    """A text pipeline's input limit in tokens: the tokenizer's limit's length limit; transformers leaves a huge placeholder there when none was saved,
    and the model's position count is the real limit then."""
    limits = [pipe.tokenizer.model_max_length, getattr(pipe.model.config, "max_position_embeddings", None)]
    return min([n for n in limits if n and n < 1_000_000] or [512])


def _parser(description: str, single: bool) -> argparse.ArgumentParser:
    parser = EntryParser(description=description)  # a bad flag: one `error:` line and exit 2, as everywhere
    if single:
        parser.add_argument("--model", help="a run's best/ or last/ folder, or a hub id (default: the newest "
                                            "<models_dir>/<task>/<run>/best)")
    parser.add_argument("--models_dir", default="outputs", help="where training wrote its runs (default: outputs)")
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1, this machine only")
    parser.add_argument("--port", type=int, default=None, help="default: 7860, or the next free port after it")
    return parser


@entry_point
def main(task_name: str, argv: list[str] | None = None) -> None:
    """`python apps/<task>.py [--model DIR] [--host H] [--port P]`: one task's demo."""
    args = _parser(f"Gradio demo of a fine-tuned {task_name} model.", single=True).parse_args(argv)
    require("gradio", "demo", "the demo")
    panel = load_panel(get_task(task_name), resolve_model(task_name, args.model, args.models_dir))
    launch(build_app([panel], panel.title), args.host, args.port)


@entry_point
def serve_all(argv: list[str] | None = None) -> None:
    """`python -m apps [--models_dir outputs]`: the newest best/ of every task with a demo, one tab each."""
    args = _parser("Serve every trained model under --models_dir, one tab per task.", single=False).parse_args(argv)
    require("gradio", "demo", "the demo")
    panels, notes = [], []
    for task in (get_task(name) for name in list_tasks()):
        found = newest_model(Path(args.models_dir) / task.name)
        if task.demo() is None:
            continue
        if found is None:
            notes.append(f"- {task.name}: not trained yet; `{train_command(task.name)}`")
            continue
        try:
            panels.append(load_panel(task, str(found)))
        except DemoError as err:  # one broken model must not take the other tabs down
            notes.append(f"- {task.name}: {err}")
    if not panels:  # what each task lacks, then the one error line
        for note in notes:
            print(f"note: {note[2:]}", file=sys.stderr)
        raise DemoError(f"no model under {args.models_dir}/<task>/<run>/best could be served (see the notes above)")
    launch(build_app(panels, "Fine-tuned model demos", tabs=True, notes="\n".join(notes)), args.host, args.port)
