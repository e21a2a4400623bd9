"""Accelerator set-up: precision choice, run directory, and the start-of-run summary."""
from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, broadcast_object_list

from shared.training.checkpoint import find_checkpoint
from shared.toolkit.config import ConfigError

RUN_FILES = ("config.yaml", "metrics.jsonl", "results.json", "train_state.json", "checkpoints")


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AMX or AVX512-BF16, where bf16 autocast is faster than fp32.

    On AVX2-only CPUs bf16 autocast was measured 4-30x slower, so 'auto' must not pick it there.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_mixed_precision(choice: str) -> str:
    """Map the --mixed_precision flag to what the hardware can run; refuse what it cannot."""
    launcher_choice = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if choice == "auto":
        if launcher_choice != "no":  # an accelerate config file chose; respect it
            choice = launcher_choice
        elif torch.cuda.is_available():
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            return "bf16" if cpu_has_native_bf16() else "no"
    if choice == "fp16" and not torch.cuda.is_available():
        raise ConfigError("--mixed_precision fp16 needs a CUDA GPU; on a CPU use bf16 "
                          "(fast where the CPU has AMX/AVX512-BF16) or no")
    if choice == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ConfigError("--mixed_precision bf16 is not supported by this GPU; use fp16 or no")
    return choice


def start_processes() -> PartialState:
    """Join the process group first, so the run folder can be agreed on before the Accelerator exists.

    Without cpu=True, a multi-process launch on a machine with no GPU quietly runs each process alone;
    with it, the processes join one gloo group.
    """
    return PartialState(cpu=not torch.cuda.is_available())


def build_accelerator(cfg, run_dir: Path) -> Accelerator:
    """The one Accelerator of a run, logging into the run folder."""
    trackers = None if cfg.report_to in ("none", "") else cfg.report_to.split(",")
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        mixed_precision=resolve_mixed_precision(cfg.mixed_precision),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        # A seeded sampler whose order depends only on (seed, epoch): what exact resume needs.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg.seed),
        log_with=trackers,
        # The engine steps the scheduler itself, once per optimizer step (accelerate would step it
        # once per process, which stretches warmup by the process count).
        step_scheduler_with_optimizer=False,
        dynamo_backend="inductor" if cfg.torch_compile else "no",
    )
    if accelerator.device.type == "cpu":
        set_cpu_threads(cfg.cpu_threads, accelerator.num_processes)
        for plugin in ("FSDP", "DEEPSPEED"):
            if os.environ.get(f"ACCELERATE_USE_{plugin}", "false").lower() == "true":
                accelerator.print(f"warning: the launch config asks for {plugin}, which accelerate runs on GPUs only; "
                                  f"on this CPU machine the run is plain data parallel ({accelerator.distributed_type.value})")
                # Else transformers still loads weights on rank 0 only (FSDP's RAM-efficient loading) and leaves the
                # other processes' models on the meta device, waiting for a broadcast that FSDP would have made.
                os.environ[f"ACCELERATE_USE_{plugin}"] = "false"
                os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = "false"
    return accelerator


def set_cpu_threads(requested: int, num_processes: int) -> int:
    """Share the CPU cores among processes. `accelerate launch` sets OMP_NUM_THREADS=1 on a CPU,
    which halves training speed on a 2-core machine, so 0 (auto) means cores // processes."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = requested or max(1, cores // num_processes)
    torch.set_num_threads(threads)
    return threads


def _newest_run_with_checkpoints(output_dir: Path) -> Path | None:
    runs = [d for d in output_dir.glob("*/checkpoints") if any(d.glob("step_*"))]
    return max(runs, key=lambda d: d.stat().st_mtime).parent if runs else None


def resolve_run_dir(task_name: str, cfg) -> Path:
    """The run folder: outputs/<task>/<run-name>; on resume, the folder of the checkpoint's run.

    Chosen on the main process and broadcast, so every process writes to the same place. A folder that
    already holds a run is refused unless resuming or --overwrite_output_dir (which clears it): two runs
    in one folder would prune each other's checkpoints and interleave their metrics.
    """
    output_dir = Path(cfg.output_dir or Path("outputs") / task_name)
    resume = cfg.resume_from_checkpoint
    if resume and resume != "latest":
        return find_checkpoint(resume, None).resolve().parent.parent
    if cfg.run_name:
        run_dir = output_dir / cfg.run_name
        if resume != "latest":
            _claim(run_dir, cfg.overwrite_output_dir)
        return run_dir
    if resume == "latest":
        found = _newest_run_with_checkpoints(output_dir)
        if found is None:
            raise ConfigError(f"--resume_from_checkpoint latest: no run with checkpoints under {output_dir}; "
                              "give --run_name or a checkpoint path")
        return found
    stamp = [time.strftime("%Y%m%d-%H%M%S")]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        broadcast_object_list(stamp)
    _claim(output_dir / stamp[0], cfg.overwrite_output_dir)
    return output_dir / stamp[0]


def _claim(run_dir: Path, overwrite: bool) -> None:
    """Refuse a folder holding another run's files, or clear them (main process) when asked to."""
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    PartialState().wait_for_everyone()  # every process looked before the main one clears anything
    if not found:
        return
    if not overwrite:
        raise ConfigError(f"{run_dir} already holds a run ({', '.join(found)}); choose another --run_name, resume it "
                          "with --resume_from_checkpoint latest, or pass --overwrite_output_dir to replace it")
    if PartialState().is_main_process:
        for name in found:
            target = run_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    PartialState().wait_for_everyone()  # no process looks at the folder before it is cleared


class StopSignals:
    """SIGTERM (cluster preemption) and SIGINT (Ctrl-C) while training: note the first one, so the loop can
    finish its optimizer step and checkpoint; a second one stops at once, as it would without this."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received = 0
        self.previous: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # signal handlers: main thread only
            self.previous = {sig: signal.signal(sig, self._note) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def _note(self, signum: int, frame) -> None:
        if self.received:
            self.__exit__()
            signal.raise_signal(signum)
            return
        self.received = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after this optimizer step with a checkpoint "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def received_by_any(self, accelerator) -> int:
        """The signal number if any process got one (all processes stop together), else 0."""
        if accelerator.num_processes == 1:
            return self.received
        flags = accelerator.gather(torch.tensor([self.received], device=accelerator.device))
        return int(flags.max().item())


def gather_eval_outputs(accelerator, value, pad_value=0):
    """Gather one eval batch's outputs; duplicated tail samples are dropped by gather_for_metrics.

    Tensors are padded with `pad_value` on every dim after the batch one, since processes may hold
    batches of different lengths or mask sizes (references pad with a value the metric ignores).
    """
    if isinstance(value, torch.Tensor):
        if accelerator.num_processes > 1:
            if value.dtype == torch.int16:
                value = value.int()  # neither gloo nor NCCL gathers int16 (segmentation masks)
            for dim in range(1, value.dim()):
                value = accelerator.pad_across_processes(value, dim=dim, pad_index=pad_value)
        return accelerator.gather_for_metrics(value).cpu().numpy()
    return accelerator.gather_for_metrics(value, use_gather_object=True)
