"""Hyperparameter search with optuna: `tasks/<task>/train.py --hpo_trials N [flags]`.

Each trial is one ordinary engine run in <study>/trial_NNNN with sampled learning rate, batch size,
weight decay, warmup and schedule; every evaluation's main metric is reported to the trial so the
median pruner can stop a bad trial early. The study lives in <study>/study.db (sqlite): running the same
command again with the same --run_name continues it up to N finished trials, re-running any trial a
killed process left unfinished. The study table (study.csv, study.md) and plots/hpo.png are rewritten
after every trial.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from shared.toolkit.config import ConfigError

SCHEDULES = ["linear", "cosine", "constant"]


def sample_config(trial, cfg):
    """The trial's config: cfg with the searched options replaced (ranges centred on cfg's own values)."""
    batch = cfg.per_device_train_batch_size
    return dataclasses.replace(
        cfg,
        learning_rate=trial.suggest_float("learning_rate", cfg.learning_rate / 10, cfg.learning_rate * 10, log=True),
        per_device_train_batch_size=trial.suggest_categorical(
            "per_device_train_batch_size", sorted({max(1, batch // 2), batch, batch * 2})),
        weight_decay=trial.suggest_float("weight_decay", 0.0, 0.1),
        warmup_ratio=trial.suggest_float("warmup_ratio", 0.0, 0.2), warmup_steps=0,
        lr_scheduler_type=trial.suggest_categorical("lr_scheduler_type", SCHEDULES),
    )


def build_pruner(enabled: bool):
    import optuna

    # Two finished trials before any pruning; a trial is judged from its first evaluation on.
    return optuna.pruners.MedianPruner(n_startup_trials=2) if enabled else optuna.pruners.NopPruner()


def _reset_accelerate() -> None:
    """Each trial builds its own Accelerator; accelerate keeps process-wide singletons."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _objective(task, cfg, study_dir: Path):
    import optuna

    from shared.training.engine import run

    def objective(trial) -> float:
        trial_cfg = sample_config(trial, cfg)
        trial_cfg = dataclasses.replace(trial_cfg, hpo_trials=0, output_dir=str(study_dir),
                                        run_name=f"trial_{trial.number:04d}", save_strategy="no",
                                        resume_from_checkpoint=None, push_to_hub=False, overwrite_output_dir=True,
                                        data_report=trial.number == 0)
        sign = {}

        def report(step: int, value: float, greater_is_better: bool) -> None:
            sign["value"] = 1.0 if greater_is_better else -1.0
            trial.report(sign["value"] * value, step)
            trial.set_user_attr("metric_at_last_eval", value)
            if trial.should_prune():
                raise optuna.TrialPruned(f"step {step}: {value:.4f} below the median of earlier trials")

        trial.set_user_attr("run_dir", str(study_dir / trial_cfg.run_name))
        try:
            results = run(type(task)(trial_cfg), on_evaluate=report)
        finally:
            _reset_accelerate()
        best = results[f"eval_{results['main_metric']}"]
        trial.set_user_attr("metric", best)
        trial.set_user_attr("main_metric", results["main_metric"])
        return sign.get("value", 1.0) * best

    return objective


def _restart_unfinished(study) -> int:
    """Trials left RUNNING by a killed process are marked failed and queued again with their params."""
    from optuna.trial import TrialState

    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
    return len(stale)


def tune(task) -> dict:
    """Run or continue the study; return the best trial's metric, params and run folder."""
    cfg = task.cfg
    import optuna
    from optuna.trial import TrialState

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--hpo_trials runs trials one after another in one process: start it with python, "
                          "not a multi-process accelerate launch")
    study_dir = Path(cfg.output_dir or Path("outputs") / task.name) / (cfg.run_name or time.strftime("hpo-%Y%m%d-%H%M%S"))
    study_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{study_dir / 'study.db'}"
    known = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}.get(task.name, 0)
    # Seeded by the trials already stored, so a continued study does not redraw the first trials' values.
    study = optuna.create_study(
        study_name=task.name, storage=storage, load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=cfg.seed + known), pruner=build_pruner(cfg.hpo_pruning))
    restarted = _restart_unfinished(study)
    finished = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    remaining = max(0, cfg.hpo_trials - len(finished))
    print(f"[hpo] study {study_dir / 'study.db'}: {len(finished)} trials done, {remaining} to run"
          + (f" ({restarted} unfinished trial(s) queued again)" if restarted else ""))
    write_tables = lambda study_, _trial: write_study_report(study_, study_dir)
    from shared.training.engine import TrainingDiverged

    # A diverged trial (too high a learning rate) is recorded as failed; the search goes on.
    study.optimize(_objective(task, cfg, study_dir), n_trials=remaining, callbacks=[write_tables],
                   catch=(TrainingDiverged,))
    write_study_report(study, study_dir)
    if not any(t.state == TrialState.COMPLETE for t in study.trials):
        raise ConfigError(f"--hpo_trials: no trial finished (see {study_dir / 'study.md'}); widen the budget")
    best = study.best_trial
    summary = {"best_metric": best.user_attrs.get("metric"), "main_metric": best.user_attrs.get("main_metric"),
               "best_params": best.params, "best_run_dir": best.user_attrs.get("run_dir"),
               "trials": len(study.trials), "study_dir": str(study_dir)}
    (study_dir / "best_trial.json").write_text(json.dumps(summary, indent=1))
    print(f"[hpo] best trial {best.number}: {summary['main_metric']} {summary['best_metric']:.4f} with "
          f"{best.params}\n[hpo] table {study_dir / 'study.md'}, plot {study_dir / 'plots' / 'hpo.png'}")
    return summary


def write_study_report(study, study_dir: Path) -> None:
    """study.csv (every trial), study.md (sorted table) and plots/hpo.png (metric per evaluation and trial)."""
    frame = study.trials_dataframe(attrs=("number", "state", "params", "user_attrs", "intermediate_values",
                                          "duration"))
    frame.drop(columns=[c for c in frame.columns if c.startswith("intermediate_values")]).to_csv(
        study_dir / "study.csv", index=False)
    params = sorted({name for t in study.trials for name in t.params})
    trials = sorted(study.trials, key=lambda t: -(t.value if t.value is not None else float("-inf")))
    header = ["trial", "state", "metric", "evaluations", *params]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for t in trials:
        metric = t.user_attrs.get("metric", t.user_attrs.get("metric_at_last_eval"))
        cells = [str(t.number), t.state.name.lower(), "" if metric is None else f"{metric:.4f}",
                 str(len(t.intermediate_values))]
        cells += [_fmt(t.params.get(name)) for name in params]
        rows.append("| " + " | ".join(cells) + " |")
    (study_dir / "study.md").write_text("\n".join(rows) + "\n")
    _plot(study, study_dir / "plots" / "hpo.png")


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else ("" if value is None else str(value))


def _plot(study, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (curves, history) = plt.subplots(1, 2, figsize=(11, 4))
    for t in study.trials:
        steps = sorted(t.intermediate_values)
        style = "--" if t.state.name == "PRUNED" else "-"
        curves.plot(steps, [t.intermediate_values[s] for s in steps], style, marker=".", label=f"trial {t.number}")
    curves.set(title="evaluations (dashed: pruned)", xlabel="step", ylabel="score (higher is better)")
    done = [t for t in study.trials if t.value is not None]
    history.plot([t.number for t in done], [t.value for t in done], "o", label="trial")
    best = [max(t.value for t in done[:i + 1]) for i in range(len(done))]
    history.plot([t.number for t in done], best, "-", label="best so far")
    history.set(title="finished trials", xlabel="trial", ylabel="score (higher is better)")
    for axes in (curves, history):
        if axes.lines:
            axes.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
