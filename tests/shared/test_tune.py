"""Hyperparameter search: tiny trials, study table and plot, pruning, and resuming from the sqlite file."""
from __future__ import annotations

import csv

import pytest

from shared.toolkit.cli import main
from tests.helpers import tiny_text_args

optuna = pytest.importorskip("optuna")


def _args(tiny_bert_dir, files, out, trials: int) -> list[str]:
    return tiny_text_args(tiny_bert_dir, *files, out, "--hpo_trials", str(trials), "--num_train_epochs", "2",
                          "--run_name", "study")


def _rows(study_dir):
    with (study_dir / "study.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_search_writes_table_and_plot_and_resumes_from_its_storage(tiny_bert_dir, toy_text_files, tmp_path):
    summary = main("text_classification", _args(tiny_bert_dir, toy_text_files, tmp_path, 2))
    study = tmp_path / "study"
    assert len(_rows(study)) == 2 and summary["trials"] == 2
    for name in ("study.db", "study.md", "plots/hpo.png", "best_trial.json", "trial_0000/best/config.json",
                 "trial_0000/data_report.json"):
        assert (study / name).exists(), name
    params = summary["best_params"]
    assert 5e-4 <= params["learning_rate"] <= 5e-2 and params["per_device_train_batch_size"] in (8, 16, 32)
    assert params["lr_scheduler_type"] in ("linear", "cosine", "constant")
    assert 0.0 <= summary["best_metric"] <= 1.0
    # Every evaluation reached its trial: 2 epochs, one evaluation each.
    assert "| 2 |" in (study / "study.md").read_text()
    # The same command with a larger budget continues the stored study: one more trial, not three.
    summary = main("text_classification", _args(tiny_bert_dir, toy_text_files, tmp_path, 3))
    assert len(_rows(study)) == 3 and (study / "trial_0002").is_dir() and not (study / "trial_0003").exists()


@pytest.mark.slow
def test_a_trial_below_the_pruning_bar_stops_after_its_first_evaluation(tiny_bert_dir, toy_text_files, tmp_path,
                                                                          monkeypatch):
    # A pruner whose bar no score reaches: the second trial must stop at its first evaluation.
    monkeypatch.setattr("shared.training.tune.build_pruner", lambda enabled: _PruneAfterFirstTrial())
    main("text_classification", _args(tiny_bert_dir, toy_text_files, tmp_path, 2))
    rows = _rows(tmp_path / "study")
    assert [r["state"] for r in rows] == ["COMPLETE", "PRUNED"]
    assert not (tmp_path / "study" / "trial_0001" / "last").exists()  # stopped before the run finished


class _PruneAfterFirstTrial(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return trial.number >= 1
