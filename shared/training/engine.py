"""The one Accelerate training and evaluation loop that every task runs through."""
from __future__ import annotations

import json
import math
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from shared.training.checkpoint import CheckpointManager, TrainState, data_files
from shared.toolkit.config import save_config
from shared.inputs.splits import check_split_signatures, split_signatures
from shared.inputs.data_report import write_data_report
from shared.training.distill import TrainingObjective, load_distiller
from shared.training.ema import ModelEma
from shared.training.end_of_run import EndOfRun
from shared.evaluation.scoring import split_scalars
from shared.training.guards import TrainingDiverged, check_finite_loss, check_finite_weights  # noqa: F401 (TrainingDiverged: re-exported)
from shared.serving.hub import check_hub_reachable
from shared.training.losses import LossSettings, class_weight_tensor
from shared.training.optim import build_optimizer, build_scheduler, warmup_steps
from shared.training.peft_utils import apply_peft
from shared.training.sampling import SeededFetch, train_batching
from shared.training.resume import resume_command, resume_settings
from shared.run import build_run
from shared.toolkit.runtime import StopSignals, build_accelerator, gather_eval_outputs, resolve_run_dir, start_processes
from shared.task import Task
from shared.evaluation.tracking import MetricsLogger


def _batch_size(batch: dict) -> int:
    return next(len(v) for v in batch.values() if hasattr(v, "__len__"))


class Engine(EndOfRun):
    """setup() -> train() -> finish(): one run of one task (finish() and the exports: end_of_run.py)."""

    def __init__(self, task: Task, on_evaluate=None):
        self.task, self.cfg = task, task.cfg
        self.on_evaluate = on_evaluate  # on_evaluate(step, main metric, greater_is_better) after each evaluation
        start_processes()
        self.run_dir = resolve_run_dir(task.name, self.cfg)
        self.accelerator = build_accelerator(self.cfg, self.run_dir)
        self.is_main = self.accelerator.is_main_process

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Build the run from the task's hooks, prepare it on this process's devices, restore a checkpoint."""
        cfg, task, acc = self.cfg, self.task, self.accelerator
        set_seed(cfg.seed)
        if cfg.push_to_hub:
            check_hub_reachable()
        adapt = (lambda model: apply_peft(model, cfg, task, log=acc.print)) if cfg.use_peft else None
        built = build_run(task, adapt_model=adapt, main_process_first=acc.main_process_first)
        self.data, self.processor, self.metric_spec = built.data, built.processor, built.metric
        self.labels = built.labels
        self.num_labels = len(self.labels) if self.labels else None
        self.raw_eval, self.raw_test = self.data["validation"], self.data.get("test")
        counts = self.data.label_counts if cfg.class_weights else None  # dense tasks count pixels
        self.class_weights = class_weight_tensor(cfg.class_weights, counts, self.num_labels or 0)
        self.loss = LossSettings.from_config(cfg, self.class_weights)
        self.eval_loss = LossSettings.from_config(cfg, None)  # as training, without class weights
        train_ds = built.datasets["train"]
        loaders = self._loaders(built)
        self._prepare(built.model, *loaders)
        self._restore_or_start(len(train_ds))
        self.data_files = data_files(cfg, self.data.splits, self.data.sources)
        sizes = (len(built.datasets[split]) if split in built.datasets else 0 for split in ("validation", "test"))
        self._print_plan(len(train_ds), *sizes)

    def _loaders(self, built) -> tuple[DataLoader, DataLoader, DataLoader | None]:
        """(train, validation, test or None) loaders; the train order depends only on (seed, epoch)."""
        cfg, pin = self.cfg, torch.cuda.is_available()
        train_ds = built.datasets["train"]
        lengths = self.task.lengths(train_ds) if cfg.group_by_length else None
        self.epoch_sampler, batching = train_batching(cfg, lengths, self.data.label_ids, len(train_ds))
        self.train_fetch = SeededFetch(train_ds, cfg.seed)  # augmentations replay exactly on resume
        # The loader's own generator keeps its per-epoch seed draw off the global RNG, which a resumed
        # run restores from the checkpoint (dropout masks then match an uninterrupted run).
        train = DataLoader(self.train_fetch, **batching, collate_fn=built.collate,
                           num_workers=cfg.dataloader_num_workers, pin_memory=pin,
                           generator=torch.Generator().manual_seed(cfg.seed))
        evaluation = (DataLoader(built.datasets[split], batch_size=cfg.per_device_eval_batch_size, shuffle=False,
                                 collate_fn=built.collate, num_workers=cfg.dataloader_num_workers, pin_memory=pin)
                      if split in built.datasets else None for split in ("validation", "test"))
        return (train, *evaluation)

    def _prepare(self, model, train_loader, eval_loader, test_loader) -> None:
        """Optimizer, objective (with a checked teacher), accelerate's prepare, the step plan, scheduler, EMA."""
        cfg, task, acc = self.cfg, self.task, self.accelerator
        optimizer = build_optimizer(cfg, model, task.lr_overrides(model))
        distiller = load_distiller(task, cfg, self.labels, acc.device, acc.autocast)
        if distiller:
            distiller.check(next(iter(eval_loader)), self.num_labels)  # the eval loader: no shuffle RNG drawn
        self.objective = TrainingObjective(task, self.loss, distiller, cfg.l1_penalty, cfg.l2_penalty)
        self.model, self.optimizer, self.train_loader, self.eval_loader = acc.prepare(
            model, optimizer, train_loader, eval_loader)
        self.test_loader = acc.prepare(test_loader) if test_loader is not None else None
        # Step counts are computed after prepare(): the loader is now this process's shard.
        self.steps_per_epoch = math.ceil(len(self.train_loader) / cfg.gradient_accumulation_steps)
        self.total_steps = cfg.max_train_steps or math.ceil(cfg.num_train_epochs * self.steps_per_epoch)
        self.num_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.scheduler = build_scheduler(cfg, self.optimizer, self.total_steps, self.metric_spec.greater_is_better)
        self.ema = ModelEma(self._plain_model(), cfg.ema_decay) if cfg.ema_decay else None
        # Checkpointed by CheckpointManager as JSON and safetensors (accelerate's custom objects are pickles).
        self.saved_objects = {"scheduler": self.scheduler, **({"ema": self.ema} if self.ema else {})}

    def _restore_or_start(self, train_rows: int) -> None:
        """Resume from --resume_from_checkpoint (refusing what cannot resume exactly), then write the run's
        config, split signatures and data report, and start the metric log."""
        cfg, task, acc = self.cfg, self.task, self.accelerator
        self.checkpoints = CheckpointManager(self.run_dir, cfg.save_total_limit)
        settings = resume_settings(cfg, acc.num_processes, self.total_steps, train_rows)
        self.state = TrainState(task=task.name, num_labels=self.num_labels, settings=settings)
        resume_step, splits = None, split_signatures(self.data.splits)
        if cfg.resume_from_checkpoint:
            path = self.checkpoints.resolve(cfg.resume_from_checkpoint, acc.print)
            self.state = CheckpointManager.load(acc, path, task.name, self.num_labels, self.saved_objects, settings,
                                                cfg.ignore_resume_mismatch)
            resume_step = self.state.step
            check_split_signatures(self.run_dir / "splits.json", splits)  # the same validation and test rows
            acc.print(f"resumed from {path} at step {self.state.step} (epoch {self.state.epoch}, "
                      f"batch {self.state.batches_in_epoch})")
        if self.is_main:  # only now: a run refused above leaves no config behind (nor overwrites a resumed run's)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / "config.yaml")
            (self.run_dir / "splits.json").write_text(json.dumps(splits, indent=1))
            if cfg.data_report:
                write_data_report(self.data.splits, task.row_key, self.run_dir, log=acc.print,
                                  warnings=self.data.warnings)
        self.logger = MetricsLogger(acc, self.run_dir, resume_step)
        if acc.trackers == [] and cfg.report_to not in ("none", ""):
            acc.init_trackers(self.run_dir.name, config={k: v for k, v in vars(cfg).items() if v is not None})

    def _print_plan(self, n_train: int, n_eval: int, n_test: int) -> None:
        cfg, acc = self.cfg, self.accelerator
        effective = cfg.per_device_train_batch_size * acc.num_processes * cfg.gradient_accumulation_steps
        acc.print(
            f"[{self.task.name}] run dir {self.run_dir}\n"
            f"  train {n_train} / validation {n_eval}{f' / test {n_test}' if n_test else ''} examples, "
            f"labels: {self.num_labels or '-'}\n"
            f"  processes {acc.num_processes} ({acc.distributed_type.value}), device {acc.device}, "
            f"precision {acc.mixed_precision}, "
            f"torch threads {torch.get_num_threads()}\n"
            f"  effective batch {effective}, steps/epoch {self.steps_per_epoch}, total steps {self.total_steps}, "
            f"epochs {self.num_epochs}, warmup {warmup_steps(cfg, self.total_steps)}")

    # ------------------------------------------------------------------ train
    def train(self) -> None:
        acc, st = self.accelerator, self.state
        self.model.train()
        bar = tqdm(total=self.total_steps, initial=st.step, disable=not acc.is_local_main_process, desc="train")
        self.train_started, self.train_samples = time.perf_counter(), 0
        self.pause_seconds = 0.0  # evaluations and checkpoints inside the loop, kept out of step throughput
        self.data_seconds = 0.0  # waiting for the next batch: the input pipeline's visible cost
        self.stop = st.step >= self.total_steps
        with StopSignals() as signals:  # SIGTERM / Ctrl-C: finish this optimizer step, checkpoint, exit
            self._train_epochs(bar, signals)
        bar.close()
        # Wall time of the whole loop, evaluations and checkpoints included (as Trainer's train_runtime).
        self.train_seconds = time.perf_counter() - self.train_started

    def _train_epochs(self, bar, signals: StopSignals) -> None:
        cfg, acc, st = self.cfg, self.accelerator, self.state
        running, micro, samples, tic = torch.zeros((), device=acc.device), 0, 0, time.perf_counter()
        for epoch in range(st.epoch, self.num_epochs):
            if self.stop:
                break
            loader = self.train_loader
            if epoch == st.epoch and st.batches_in_epoch:
                loader = acc.skip_first_batches(self.train_loader, st.batches_in_epoch)
            loader.set_epoch(epoch)  # the seeded shuffle order depends only on (seed, epoch)
            self.train_fetch.set_epoch(epoch)  # and so do the augmentations
            if self.epoch_sampler:  # under a multi-process shard, set_epoch may not reach it
                self.epoch_sampler.set_epoch(epoch)
            st.epoch, st.batches_in_epoch = epoch, (st.batches_in_epoch if epoch == st.epoch else 0)
            for batch in self._timed(loader):
                with acc.accumulate(self.model):
                    loss, _ = self.objective(self.model, batch)
                    acc.backward(loss)
                    grad_norm = None
                    if acc.sync_gradients and cfg.max_grad_norm > 0:
                        grad_norm = acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                running += loss.detach().float()  # no host sync here; read only at logging steps
                micro += 1
                samples += _batch_size(batch) * acc.num_processes
                self.train_samples += _batch_size(batch) * acc.num_processes
                st.batches_in_epoch += 1
                if not acc.sync_gradients:
                    continue
                if not acc.optimizer_step_was_skipped:
                    self.scheduler.step()
                if self.ema:
                    self.ema.update(self._plain_model())
                st.step += 1
                bar.update(1)
                if st.step % cfg.logging_steps == 0 or st.step == self.total_steps:
                    self._log_train(running, micro, samples, tic, grad_norm, epoch)
                    running, micro, samples, tic = torch.zeros((), device=acc.device), 0, 0, time.perf_counter()
                self._after_step(st.batches_in_epoch == len(self.train_loader), running)
                received = signals.received_by_any(acc)
                if received:
                    self._stop_for_signal(received, running)
                if self.stop or st.step >= self.total_steps:
                    self.stop = True
                    break

    def _plain_model(self) -> torch.nn.Module:
        """The model without its process and torch.compile wrappers: what EMA tracks and exports save."""
        return self.accelerator.unwrap_model(self.model, keep_torch_compile=False)

    def _timed(self, loader):
        """The loader's batches, adding the time spent waiting for each to self.data_seconds."""
        batches = iter(loader)
        while True:
            started = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                return
            self.data_seconds += time.perf_counter() - started
            yield batch

    def _log_train(self, running, micro, samples, tic, grad_norm, epoch) -> None:
        acc, st = self.accelerator, self.state
        loss = acc.reduce(running, reduction="mean").item() / max(1, micro)
        check_finite_loss(loss, st.step, epoch)
        record = {"train/loss": loss, "train/lr": self.scheduler.get_last_lr()[0],
                  "perf/samples_per_sec": samples / max(1e-9, time.perf_counter() - tic)}
        if grad_norm is not None:
            record["train/grad_norm"] = float(grad_norm)
        self.logger.log(record, st.step, epoch + st.batches_in_epoch / len(self.train_loader))

    def _after_step(self, end_of_epoch: bool, running: torch.Tensor) -> None:
        cfg, st = self.cfg, self.state
        at_steps = lambda strategy, every: (strategy == "steps" and st.step % every == 0) or (
            strategy == "epoch" and end_of_epoch)
        paused = time.perf_counter()
        if at_steps(cfg.eval_strategy, cfg.eval_steps):
            self._evaluate_and_track()
        if end_of_epoch:  # a checkpoint taken now must resume at the start of the next epoch
            st.epoch, st.batches_in_epoch = st.epoch + 1, 0
        if at_steps(cfg.save_strategy, cfg.save_steps):
            self._save_checkpoint(running)
        self.pause_seconds += time.perf_counter() - paused

    def _save_checkpoint(self, running: torch.Tensor) -> Path:
        # Losses since the last log and the weights this update made, checked before saving: `latest`
        # must never be a diverged checkpoint.
        check_finite_loss(self.accelerator.reduce(running.clone(), reduction="sum").item(), self.state.step,
                          self.state.epoch)
        self._stop_if_weights_diverged()
        self.saved_step = self.state.step
        return self.checkpoints.save(self.accelerator, self.state, self.saved_objects)

    def _stop_if_weights_diverged(self) -> None:
        """The weights (and EMA) on every process: a non-finite update must reach no checkpoint or export."""
        tensors = [p.detach() for p in self.model.parameters()] + list(self.ema.shadow.values() if self.ema else [])
        check_finite_weights(self.accelerator, tensors, self.state.step)

    def _stop_for_signal(self, signum: int, running: torch.Tensor) -> None:
        """Preemption: this optimizer step is done; checkpoint it (unless just saved), say how to resume, exit."""
        path = self.checkpoints.latest() if getattr(self, "saved_step", None) == self.state.step else \
            self._save_checkpoint(running)
        name = signal.Signals(signum).name
        self.accelerator.print(f"stopped by {name} after optimizer step {self.state.step}; checkpoint {path}\n"
                               f"resume with: {resume_command(path)}")
        raise SystemExit(128 + signum)  # what a shell reports for a process ended by that signal

    # ------------------------------------------------------------------ eval
    def evaluate(self) -> dict:
        """Metrics of the current weights (EMA weights when enabled) on the validation split."""
        metrics, self.last_batches, self.eval_samples_per_second = self._score(self.eval_loader, self.raw_eval)
        return metrics

    def _score(self, loader, raw, desc: str = "eval") -> tuple[dict, list, float]:
        """(metrics, gathered batches, samples per second) of the current weights on one held-out split."""
        acc = self.accelerator
        self.model.eval()
        losses, batches, started, samples = [], [], time.perf_counter(), 0
        weights = self.ema.swapped_in(self._plain_model()) if self.ema else nullcontext()
        with weights, torch.no_grad():
            for batch in tqdm(loader, disable=not acc.is_local_main_process, desc=desc, leave=False):
                loss, predictions, references = self.task.eval_step(self.model, batch, self.eval_loss)
                samples += _batch_size(batch) * acc.num_processes
                batches.append((gather_eval_outputs(acc, predictions),
                                gather_eval_outputs(acc, references, self.task.reference_pad_value)))
                if loss is not None:
                    losses.append(acc.gather_for_metrics(loss.detach().float().repeat(_batch_size(batch))))
        # Every process computes the same metrics from the same gathered data, so decisions
        # such as early stopping agree without another broadcast.
        metrics = self.task.compute_metrics(self.metric_spec, batches, raw)
        if losses:
            metrics["loss"] = torch.cat(losses).mean().item()
        self.model.train()
        return metrics, batches, samples / max(time.perf_counter() - started, 1e-9)

    def _evaluate_and_log(self) -> dict:
        """Evaluate and append the scalars to metrics.jsonl (with time_s, so time-to-target can be read)."""
        st, metrics = self.state, self.evaluate()
        self.logger.log({**{f"eval/{k}": v for k, v in split_scalars(metrics)[0].items()},
                         "perf/eval_samples_per_sec": self.eval_samples_per_second}, st.step,
                        st.epoch + st.batches_in_epoch / len(self.train_loader))
        return metrics

    def _evaluate_and_track(self) -> None:
        cfg, st, spec = self.cfg, self.state, self.metric_spec
        metrics = self._evaluate_and_log()
        self.last_eval = (st.step, metrics)
        scalars, _ = split_scalars(metrics)
        value = scalars.get(spec.main)
        if value is None:
            raise KeyError(f"main metric {spec.main!r} missing from eval metrics {sorted(scalars)}")
        if hasattr(self.scheduler, "step_metric"):
            self.scheduler.step_metric(value)
        if self.on_evaluate:  # hyperparameter search: report, and maybe stop this trial
            self.on_evaluate(st.step, value, spec.greater_is_better)
        sign = 1 if spec.greater_is_better else -1
        improved = st.best_metric is None or sign * (value - st.best_metric) > cfg.early_stopping_min_delta
        if improved:
            st.best_metric, st.best_step, st.evals_without_improvement = value, st.step, 0
            st.best_metrics = metrics
            self._export("best", metrics)
        else:
            st.evals_without_improvement += 1
            if cfg.early_stopping_patience and st.evals_without_improvement >= cfg.early_stopping_patience:
                self.accelerator.print(f"early stopping at step {st.step}: no {spec.main} gain in "
                                       f"{st.evals_without_improvement} evaluations")
                self.stop = True
        self.accelerator.print(f"step {st.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scalars.items()))


def run(task: Task, on_evaluate=None) -> dict:
    """Train and evaluate `task` (built with its config); return the results written to results.json."""
    engine = Engine(task, on_evaluate)
    engine.setup()
    engine.train()
    return engine.finish()
