"""Atomic checkpoints, exact resume state, pruning, and best/last model export."""
from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator

from shared.config import ConfigError

STATE_FILE = "train_state.json"


def _builtin(value):
    """JSON fallback for numpy scalars and arrays found in metric dicts."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


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

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1, default=_builtin))

    @classmethod
    def load(cls, path: Path) -> "TrainState":
        return cls(**json.loads(path.read_text()))


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

    def save(self, accelerator: Accelerator, state: TrainState) -> Path:
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

    def resolve(self, reference: str) -> Path:
        if reference == "latest":
            found = self.latest()
            if found is None:
                raise ConfigError(f"--resume_from_checkpoint latest: no complete checkpoint in {self.root}")
            return found
        return Path(reference)

    @staticmethod
    def load(accelerator: Accelerator, path: Path, task_name: str, num_labels: int | None) -> TrainState:
        state = TrainState.load(path / STATE_FILE)
        if state.task and state.task != task_name:
            raise ConfigError(f"checkpoint {path} was written by task {state.task!r}, not {task_name!r}")
        if state.num_labels != num_labels:
            raise ConfigError(f"checkpoint {path} has a head of {state.num_labels} labels but the data has "
                              f"{num_labels}; resume with the same data, or start a new run")
        try:
            accelerator.load_state(str(path))
        except Exception as err:  # truncated or corrupt files: safetensors, torch and pickle raise many types
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            others = [p.name for p in sorted(path.parent.glob("step_*")) if p != path and (p / STATE_FILE).is_file()]
            raise ConfigError(f"checkpoint {path} cannot be loaded ({type(err).__name__}: {reason}); it is damaged. "
                              f"Resume from another checkpoint ({others or 'none left'}) or start a new run") from err
        return state


def write_model_card(out_dir: Path, info: dict) -> None:
    """A README.md model card: what was trained, on what, and what it scored."""
    metrics = info.get("metrics", {})
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items() if isinstance(v, (int, float)))
    text = f"""---
library_name: transformers
pipeline_tag: {info.get('pipeline_tag', '')}
base_model: {info.get('base_model', '')}
tags: [finetune-suite, {info.get('task', '')}]
---
# {info.get('task', 'model')} fine-tuned from {info.get('base_model', '')}

- Data: {info.get('data', '')}
- Trained: {time.strftime('%Y-%m-%d %H:%M')} UTC, {info.get('steps', '?')} optimizer steps
- Command: `{info.get('command', '')}`

| metric | value |
|---|---|
{rows}

Load it with `transformers.pipeline("{info.get('pipeline_tag', '')}", model="<this folder>")`.
"""
    (out_dir / "README.md").write_text(text)


def export_model(model, processor, out_dir: Path, card: dict) -> None:
    """Write a save_pretrained folder (merged if it carries LoRA adapters) via a temp dir and rename."""
    tmp = out_dir.with_name(f".tmp-{out_dir.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(model, "merge_and_unload"):  # a peft model: keep the adapter, ship merged weights
        model.save_pretrained(tmp / "adapter")
        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(tmp)
    if processor is not None:
        processor.save_pretrained(tmp)
    write_model_card(tmp, card)
    (tmp / "eval_results.json").write_text(json.dumps(card.get("metrics", {}), indent=1, default=_builtin))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
