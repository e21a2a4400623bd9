"""Atomic checkpoints, exact resume state, pruning, and best/last model export."""
from __future__ import annotations

import copy
import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import load as accelerate_load
from safetensors.torch import load_file, save_file

from shared.toolkit.config import ConfigError
from shared.training.resume import check_settings

STATE_FILE = "train_state.json"
OBJECTS_FILE = "objects.json"  # scheduler, EMA ...: their state_dict()s as JSON ...
OBJECT_TENSORS = "objects.safetensors"  # ... with every tensor here, so resuming never unpickles anything


def _builtin(value):
    """JSON fallback for numpy scalars and arrays found in metric dicts."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _reason(err: Exception) -> str:
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"


@dataclass
class TrainState:
    """Everything besides tensors that a resumed run needs to continue exactly."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of `epoch` already consumed
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    best_metrics: dict = field(default_factory=dict)
    task: str = ""
    num_labels: int | None = None
    settings: dict = field(default_factory=dict)  # what exact resume depends on (Engine.resume_settings)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1, default=_builtin))

    @classmethod
    def load(cls, path: Path) -> "TrainState":
        """The state, or a ConfigError naming the file when it is truncated, not JSON or not a state."""
        try:
            values = json.loads(path.read_text())
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in values.items() if k in known})
        except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as err:
            raise ConfigError(f"{path} is damaged ({_reason(err)})") from err


def _encode(value, key: str, tensors: dict):
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(value, dict):
        return {str(k): _encode(v, f"{key}.{k}", tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]
    return value  # numbers (inf included), strings, bools, None


def _decode(value, tensors: dict):
    if isinstance(value, dict):
        if list(value) == ["__tensor__"]:
            return tensors[value["__tensor__"]]
        return {k: _decode(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    return value


def save_objects(objects: dict, folder: Path) -> None:
    """Each object's state_dict(): plain values as JSON, tensors as safetensors (no pickle)."""
    tensors: dict = {}
    encoded = {name: _encode(obj.state_dict(), name, tensors) for name, obj in objects.items()}
    save_file(tensors, str(folder / OBJECT_TENSORS))
    (folder / OBJECTS_FILE).write_text(json.dumps(encoded))


def load_objects(objects: dict, folder: Path) -> None:
    """Restore what save_objects wrote. A checkpoint of an older version (accelerate's pickled
    custom_checkpoint_<i>.pkl files) is read with weights_only=True: tensors and numbers, never code."""
    if (folder / OBJECTS_FILE).is_file():
        tensors = load_file(str(folder / OBJECT_TENSORS))
        states = {k: _decode(v, tensors) for k, v in json.loads((folder / OBJECTS_FILE).read_text()).items()}
    else:
        states = {name: _load_legacy(folder / f"custom_checkpoint_{i}.pkl") for i, name in enumerate(objects)}
    for name, obj in objects.items():
        if name not in states:
            raise ConfigError(f"checkpoint {folder} holds no {name} state; resume with the settings it was written "
                              "with, or start a new run")
        obj.load_state_dict(states[name])


def _load_legacy(path: Path):
    if not path.is_file():
        raise ConfigError(f"checkpoint {path.parent}: neither {OBJECTS_FILE} nor {path.name}; it is incomplete")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses any pickled callable: it is never run
        raise ConfigError(f"{path} holds more than tensors and numbers ({_reason(err)}); refused, since loading "
                          "it could run code. Resume only from checkpoints you wrote, or start a new run") from err


@contextmanager
def _without_legacy_objects(path: Path):
    """The checkpoint folder, or a view of it without custom_checkpoint_<i>.pkl files, which accelerate
    would refuse (no objects are registered with it) or unpickle; load_objects reads them safely instead."""
    legacy = list(path.glob("custom_checkpoint_*.pkl"))
    if not legacy:
        yield path
        return
    with tempfile.TemporaryDirectory() as view:
        for item in path.iterdir():
            if item not in legacy:
                (Path(view) / item.name).symlink_to(item.resolve())
        yield Path(view)


def find_checkpoint(reference: str, root: Path | None, log=None) -> Path:
    """The checkpoint `reference` names: 'latest' (newest under `root`), a checkpoint folder, or a run folder
    (its newest). A checkpoint whose train_state.json cannot be read is skipped, and `log` says so."""
    path = Path(reference)
    if reference != "latest":
        if (path / "checkpoints").is_dir():  # a run folder (which holds a train_state.json of its own too)
            root = path / "checkpoints"
        elif (path / STATE_FILE).is_file():
            return path
        else:
            raise ConfigError(f"--resume_from_checkpoint {reference}: not a complete checkpoint (no {STATE_FILE})")
    done = CheckpointManager(root.parent, 1).complete() if root is not None else []
    for index, candidate in enumerate(reversed(done)):
        try:
            TrainState.load(candidate / STATE_FILE)
        except ConfigError as err:
            if log:
                log(f"warning: {err}; falling back to the checkpoint before it")
            continue
        if log and (index or reference != "latest"):
            log(f"--resume_from_checkpoint {reference}: using {candidate}, the newest complete checkpoint there")
        return candidate
    raise ConfigError(f"--resume_from_checkpoint {reference}: no complete checkpoint in {root}")


class CheckpointManager:
    """Owns run_dir/checkpoints: step_XXXXXXXX folders written to a temp name, then renamed."""

    def __init__(self, run_dir: Path, keep: int):
        self.root = run_dir / "checkpoints"
        self.keep = keep

    def complete(self) -> list[Path]:
        """Finished checkpoints, oldest first (zero-padded names sort numerically)."""
        if not self.root.is_dir():
            return []
        return sorted(d for d in self.root.glob("step_*") if (d / STATE_FILE).is_file())

    def latest(self) -> Path | None:
        done = self.complete()
        return done[-1] if done else None

    def save(self, accelerator: Accelerator, state: TrainState, objects: dict | None = None) -> Path:
        """Write checkpoint `state.step`: accelerate's model, optimizer and RNG state, `objects` (name ->
        anything with state_dict/load_state_dict) through save_objects, then the state file."""
        final = self.root / f"step_{state.step:08d}"
        tmp = self.root / f".tmp-step_{state.step:08d}"
        if accelerator.is_main_process:
            for stale in self.root.glob(".tmp-*"):  # left by a run killed while writing
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))  # every process writes its own RNG state
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save_objects(objects or {}, tmp)
            state.save(tmp / STATE_FILE)  # written last: its presence marks the checkpoint complete
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            self._prune()
            (self.root.parent / STATE_FILE).write_text(json.dumps(
                {**asdict(state), "checkpoints": [d.name for d in self.complete()]}, indent=1, default=_builtin))
        accelerator.wait_for_everyone()
        return final

    def _prune(self) -> None:
        done = self.complete()
        for old in done[: max(0, len(done) - self.keep)]:
            shutil.rmtree(old, ignore_errors=True)

    def resolve(self, reference: str, log=None) -> Path:
        return find_checkpoint(reference, self.root, log)

    @staticmethod
    def load(accelerator: Accelerator, path: Path, task_name: str, num_labels: int | None, objects: dict | None = None,
             settings: dict | None = None, ignore_mismatch: bool = False) -> TrainState:
        """Restore checkpoint `path` into the prepared objects, refusing one this run cannot continue exactly."""
        state = TrainState.load(path / STATE_FILE)
        if state.task and state.task != task_name:
            raise ConfigError(f"checkpoint {path} was written by task {state.task!r}, not {task_name!r}")
        if state.num_labels != num_labels:
            raise ConfigError(f"checkpoint {path} has a head of {state.num_labels} labels but the data has "
                              f"{num_labels}; resume with the same data, or start a new run")
        try:
            rng = path / f"random_states_{accelerator.process_index}.pkl"
            if rng.is_file():  # accelerate skips an RNG file it cannot read in silence: the resume would be inexact
                accelerate_load(rng)
            with _without_legacy_objects(path) as folder:
                accelerator.load_state(str(folder))  # every file through weights_only=True: tensors and numbers only
            load_objects(objects or {}, path)
        except ConfigError:
            raise
        except Exception as err:  # truncated or corrupt files: safetensors, torch and pickle raise many types
            others = [p.name for p in sorted(path.parent.glob("step_*")) if p != path and (p / STATE_FILE).is_file()]
            raise ConfigError(f"checkpoint {path} cannot be loaded ({_reason(err)}); it is damaged. "
                              f"Resume from another checkpoint ({others or 'none left'}) or start a new run") from err
        if settings is not None:
            check_settings(state.settings, settings, path, ignore_mismatch, accelerator.print)
            state.settings = settings  # later checkpoints of this run record the settings it runs under
        return state


INFO_FILE = "training_info.json"
VERSIONED_PACKAGES = ("torch", "transformers", "accelerate", "datasets", "evaluate", "peft", "timm")


def portable(value: str) -> str:
    """An absolute path as its last two parts (parent/name); anything else unchanged. What is pushed to the
    hub then names the data and models a run used without the local folder layout."""
    flag, sep, rest = value.partition("=") if value.startswith("--") else ("", "", value)
    if not Path(rest).is_absolute():
        return value
    return flag + sep + "/".join(Path(rest).parts[-2:])


def base_model_id(reference: str) -> str | None:
    """The hub id a model card names as base_model: the upstream repo of a packaged backbone, the base of a
    saved model this run continued from, an owner/name hub id as given; None otherwise (a local folder
    without that record, or a task's own name for a model started from scratch)."""
    from shared.toolkit.models import is_packaged, packaged_hub_id

    if is_packaged(reference):
        return packaged_hub_id(reference)[0] or None
    if Path(reference).is_dir():
        return read_training_info(Path(reference)).get("base_model")
    return reference if reference.count("/") == 1 else None


def data_files(cfg, data, sources: dict[str, str] | None = None) -> dict:
    """The data a run used: hub dataset or file and folder names (never absolute paths), and rows per split.

    `sources` (split -> file or folder, from TaskData) names what a task read when no flag gave it (its
    embedded sample data).
    """
    fields = cfg.__dataclass_fields__
    files = {name: portable(str(value)) for name in fields if name.endswith(("_file", "_dir"))
             and name.split("_")[0] in ("train", "validation", "test") and (value := vars(cfg)[name])}
    if not files and not cfg.dataset_name:
        files = {f"{split}_data": portable(str(source)) for split, source in (sources or {}).items()}
    return {"dataset_name": cfg.dataset_name, "dataset_config_name": cfg.dataset_config_name, "files": files,
            "validation_split": cfg.validation_split, "test_split": cfg.test_split, "seed": cfg.seed,
            "rows": {name: len(split) for name, split in data.items()}}


def training_info(task: str, pipeline_tag: str, cfg, data: dict, labels: list[str] | None, metrics: dict,
                  steps: int) -> dict:
    """What a saved model is, written as training_info.json beside its weights; the card is rendered from it."""
    import importlib.metadata
    import sys

    from shared.toolkit.models import is_packaged, packaged_hub_id

    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    note = packaged_hub_id(cfg.model_name_or_path)[1] if is_packaged(cfg.model_name_or_path) else ""
    return {"task": task, "pipeline_tag": pipeline_tag, "base_model": base_model_id(cfg.model_name_or_path),
            "base_model_name": portable(cfg.model_name_or_path), "base_model_note": note, "data": data,
            "labels": labels, "validation_metrics": metrics, "steps": steps,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(portable(arg) for arg in sys.argv), "versions": versions}


def read_training_info(model_dir: Path) -> dict:
    """training_info.json of a saved model; {} for folders saved before it existed (or not by this project)."""
    try:
        info = json.loads((Path(model_dir) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _table(metrics: dict) -> str:
    rows = [f"| {k} | {v:.4f} |" for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return "| metric | value |\n|---|---|\n" + "\n".join(rows) + "\n" if rows else "(none)\n"


def write_model_card(out_dir: Path, info: dict) -> None:
    """README.md rendered from training_info: what was trained, on what, and its validation and test scores."""
    data = info.get("data") or {}
    source = data.get("dataset_name") or ", ".join(f"{k} `{v}`" for k, v in (data.get("files") or {}).items())
    rows = ", ".join(f"{k} {v}" for k, v in (data.get("rows") or {}).items())
    base = info.get("base_model") or info.get("base_model_name", "")
    front = [f"pipeline_tag: {info.get('pipeline_tag', '')}"] + (
        [f"base_model: {info['base_model']}"] if info.get("base_model") else [])
    test = info.get("test_metrics")
    test_part = (f"\n## Test results\n\nThe best model, scored once after training on the held-out test split "
                 f"({(data.get('rows') or {}).get('test', '?')} rows):\n\n{_table(test)}" if test else "")
    note = f"\n- Base weights: {info['base_model_note']}" if info.get("base_model_note") else ""
    text = f"""---
library_name: transformers
{chr(10).join(front)}
tags: [finetune-suite, {info.get('task', '')}]
---
# {info.get('task', 'model')} fine-tuned from {base}
{note}
- Data: {source or 'embedded sample data'} ({rows})
- Labels: {", ".join(info.get("labels") or []) or '-'}
- Trained: {info.get('date', '')}, {info.get('steps', '?')} optimizer steps
- Command: `{info.get('command', '')}`

## Validation results

{_table(info.get("validation_metrics") or {})}{test_part}
Load it with `transformers.pipeline("{info.get('pipeline_tag', '')}", model="<this folder>")`.
Everything above is also in `training_info.json` beside the weights.
"""
    (out_dir / "README.md").write_text(text)


def add_test_metrics(model_dir: Path, metrics: dict) -> None:
    """Add the test scores to a saved model's training_info.json, its card and test_results.json."""
    info = {**read_training_info(model_dir), "test_metrics": metrics}
    (model_dir / INFO_FILE).write_text(json.dumps(info, indent=1, default=_builtin))
    (model_dir / "test_results.json").write_text(json.dumps(metrics, indent=1, default=_builtin))
    write_model_card(model_dir, info)


def export_model(model, processor, out_dir: Path, info: dict) -> None:
    """Write a save_pretrained folder (merged if it carries LoRA adapters) via a temp dir and rename."""
    tmp = out_dir.with_name(f".tmp-{out_dir.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(model, "merge_and_unload"):  # a peft model: keep the adapter, ship merged weights
        model.save_pretrained(tmp / "adapter")
        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(tmp)
    if processor is not None:
        processor.save_pretrained(tmp)
    (tmp / INFO_FILE).write_text(json.dumps(info, indent=1, default=_builtin))
    write_model_card(tmp, info)
    (tmp / "eval_results.json").write_text(json.dumps(info.get("validation_metrics", {}), indent=1, default=_builtin))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
