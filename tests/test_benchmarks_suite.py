"""The benchmark suite's CLI and the commands it would launch, built without running any of them."""
from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import pytest

from benchmarks import common
from benchmarks.__main__ import add_run_options, main, run_options
from benchmarks.suite import Options, columns, pairs, plan, seed_means
from shared.toolkit.runtime import resolve_mixed_precision

ROOT = Path(__file__).resolve().parents[1]
FORMER = ["text_classification", "image_classification", "object_detection", "question_answering",
          "semantic_segmentation", "translation"]


def _parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser()
    add_run_options(parser)
    return run_options(parser.parse_args(argv))


def _value(command: list[str], flag: str) -> str | None:
    """The last value of `flag` on a command line (argparse keeps the last), None if absent."""
    values = [command[i + 1] for i, part in enumerate(command[:-1]) if part == flag]
    return values[-1] if values else None


def test_cli_seeds_and_only_ours_build_one_seeded_command_per_seed(capsys):
    main(["run", "--tasks", "image_classification", "--seeds", "0", "1", "--only", "ours", "--dry_run"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for seed, line in zip([0, 1], lines):
        command = shlex.split(line.split("] ", 1)[1])
        assert command[1].endswith("tasks/image_classification/train.py")
        assert _value(command, "--config") == "tasks/image_classification/recipes/hymenoptera.yaml"
        assert _value(command, "--seed") == str(seed)
        assert _value(command, "--output_dir").endswith(f"image_classification-ours-seed{seed}")
        assert not any("baselines" in part for part in command)


def test_plan_alternates_the_sides_per_seed_and_routes_each_flag_set(tmp_path):
    options = _parse(["--tasks", "object_detection", "--seeds", "0", "1", "--epochs", "4",
                      "--extra_flags", "--architecture rt_detr --learning_rate 1e-4",
                      "--ours_flags=--no_group_by_length", "--trainer_flags", "--max_steps 450"])
    runs = plan(pairs()["object_detection"], options, tmp_path)
    assert [(r.side, r.seed) for r in runs] == [("ours", 0), ("trainer", 0), ("ours", 1), ("trainer", 1)]
    assert len({r.out for r in runs}) == 4
    for run in runs:
        assert _value(run.command, "--architecture") == "rt_detr"
        assert _value(run.command, "--learning_rate") == "1e-4"
        assert _value(run.command, "--num_train_epochs") == "4"
        assert _value(run.command, "--seed") == str(run.seed)
        assert _value(run.command, "--train_dir").endswith("raccoon/train")
        assert run.env == {}
    ours, trainer = runs[0].command, runs[1].command
    assert ours[1].endswith("tasks/object_detection/train.py") and "--no_group_by_length" in ours
    assert "--max_steps" not in ours and "--per_epoch_eval" not in ours
    assert _value(ours, "--eval_strategy") is None  # full mode: the recipe's evaluation cadence
    assert trainer[1].endswith("benchmarks/baselines/object_detection_trainer.py")
    assert _value(trainer, "--max_steps") == "450" and "--no_group_by_length" not in trainer
    assert "--per_epoch_eval" in trainer
    assert _value(trainer, "--recipe") == "tasks/object_detection/recipes/raccoon.yaml"


def test_quick_and_eval_at_end_evaluate_once_and_epochs_override_the_quick_slice(tmp_path):
    pair = pairs()["text_classification"]
    for options in (Options(quick=True, epochs=2), Options(eval_at_end=True, epochs=2)):
        ours, trainer = (run.command for run in plan(pair, options, tmp_path))
        assert _value(ours, "--eval_strategy") == "end" and "--per_epoch_eval" not in trainer
        assert _value(ours, "--num_train_epochs") == _value(trainer, "--num_train_epochs") == "2"
        assert ("--max_train_samples" in ours) is options.quick
    # a user's own evaluation flag for our side comes after the suite's schedule, so it wins
    ours = plan(pair, Options(quick=True, ours_flags=["--eval_strategy", "epoch"]), tmp_path)[0].command
    assert _value(ours, "--eval_strategy") == "epoch"


def test_only_trainer_precision_and_omp_passive(tmp_path):
    pair = pairs()["semantic_segmentation"]
    (default,) = plan(pair, Options(only="trainer"), tmp_path)
    assert default.side == "trainer" and default.precision == resolve_mixed_precision("auto")
    assert ("--bf16" in default.command) is (default.precision == "bf16")
    (fp32,) = plan(pair, _parse(["--only", "trainer", "--omp_passive", "--trainer_flags",
                                 "--max_steps 450 --mixed_precision no"]), tmp_path)
    assert fp32.precision == "no" and "--bf16" not in fp32.command
    assert fp32.env == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert _value(fp32.command, "--max_steps") == "450"


def test_unknown_task_is_refused(capsys):
    with pytest.raises(SystemExit, match="no benchmark pair for \\['nope'\\]"):
        main(["run", "--tasks", "nope", "--dry_run"])


def test_recorded_command_parses_back_to_the_same_options():
    argv = ["--tasks", "image_classification", "translation", "--quick", "--seeds", "0", "1", "2", "--only",
            "ours", "--epochs", "3", "--extra_flags", "--learning_rate 1e-4", "--ours_flags=--no_group_by_length",
            "--trainer_flags", "--pipeline suite", "--eval_at_end", "--omp_passive", "--tag", "variant"]
    options = _parse(argv)
    command = options.command(["image_classification", "translation"])
    assert command.startswith("python -m benchmarks run --quick --tasks image_classification translation --seeds 0 1 2")
    assert _parse(shlex.split(command)[4:]) == options
    assert options.kind() == "suite-quick-variant" and Options().kind() == "suite"
    assert Options().command(["text_classification"]) == "python -m benchmarks run --tasks text_classification"


def test_seed_means_ratios_and_columns():
    from benchmarks.suite import _ratios

    def row(run, seed, value, speed, rss):
        return {"task": "image_classification", "run": run, "seed": seed, "metric": "accuracy", "target": 0.92,
                "value": value, "best_value": value, "train_samples_per_s": speed, "peak_rss_mb": rss,
                "wall_seconds": 10.0, "precision": "bf16", "other_metrics": {"f1": value}}

    rows = [row("ours", 0, 0.9, 20.0, 2800.0), row("transformers.Trainer", 0, 0.8, 10.0, 3000.0),
            row("ours", 1, 0.94, 22.0, 2900.0), row("transformers.Trainer", 1, 0.86, 12.0, 3100.0)]
    means = seed_means(rows)
    assert [m["run"] for m in means] == ["ours, mean of 2 seeds", "transformers.Trainer, mean of 2 seeds"]
    assert means[0]["value"] == 0.92 and means[0]["value_range"] == "0.9-0.94" and means[0]["seed"] == "0 1"
    assert means[0]["train_samples_per_s"] == 21.0 and means[1]["peak_rss_mb"] == 3050.0
    rows += means
    _ratios(rows)
    assert [r["speed_vs_trainer"] for r in rows] == [2.0, 1.0, 1.833, 1.0, 1.909, 1.0]
    assert rows[4]["memory_vs_trainer"] == round(2850 / 3050, 3)
    assert "seed" in columns(rows) and "value_range" in columns(rows)
    plain = [{k: v for k, v in r.items() if k not in ("seed", "value_range")} for r in rows[:2]]
    assert "seed" not in columns(plain) and "value_range" not in columns(plain) and "value" in columns(plain)
    assert seed_means(rows[:2]) == []  # one seed: no mean rows


def test_one_writer_merges_rows_by_task_and_shows_other_metrics(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(common, "machine_tag", lambda: "test")
    monkeypatch.setattr(common, "machine_info", lambda: {"cpu": "test"})
    first = [{"task": "a", "run": "ours", "value": 1.0, "other_metrics": {"f1": 0.5}},
             {"task": "b", "run": "ours", "value": 2.0}]
    common.write_merged_rows("suite-x", first, "cmd one", columns)
    path = common.write_merged_rows("suite-x", [{"task": "b", "run": "ours", "value": 3.0}], "cmd two", columns)
    saved = json.loads(path.read_text())
    assert [(r["task"], r["value"], r["command"]) for r in saved["rows"]] == [("a", 1.0, "cmd one"),
                                                                            ("b", 3.0, "cmd two")]
    assert "| f1 0.5 |" in saved["table"] and "other_metrics" in saved["table"]
    assert path.with_suffix(".md").read_text().startswith("`cmd one`\n`cmd two`\n")


def test_per_task_scripts_are_gone_and_no_readme_cites_them():
    for name in FORMER:
        assert not (ROOT / "benchmarks" / f"{name}.py").exists()
    names = "|".join(FORMER)
    pattern = re.compile(rf"python -m benchmarks\.({names})\b|python benchmarks/({names})\.py")
    readmes = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "tasks").glob("*/README.md")),
               *sorted((ROOT / "docs").glob("*.md"))]
    cited = [f"{path.relative_to(ROOT)}:{i}" for path in readmes
             for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert cited == []


def test_run_suite_reads_both_sides_results_into_one_table(tmp_path, monkeypatch):
    """The launched processes faked: each writes the result files its real script writes."""
    from benchmarks import suite

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(common, "machine_tag", lambda: "test")
    monkeypatch.setattr(common, "machine_info", lambda: {"cpu": "test"})
    launched = []

    def fake_run(command, log_path, env=None):
        launched.append((command, env))
        out, seed = Path(_value(command, "--output_dir")), int(_value(command, "--seed"))
        if command[1].endswith("train.py"):
            (out / "run").mkdir(parents=True)
            (out / "run" / "results.json").write_text(json.dumps(
                {"last_eval_bleu": 30.0 + seed, "eval_bleu": 31.0 + seed, "last_eval_chrf": 50.0,
                 "train_samples_per_second": 150.0, "eval_samples_per_second": 9.0, "precision": "bf16",
                 "global_step": 100}))
            (out / "run" / "metrics.jsonl").write_text(json.dumps({"time_s": 5.0, "eval/bleu": 30.0}) + "\n")
        else:
            (out / "trainer_results.json").write_text(json.dumps(
                {"eval_bleu": 29.0, "eval_chrf": 49.0, "train_samples_per_second": 100.0, "global_step": 100}))
        return {"wall_seconds": 60.0, "peak_rss_mb": 2000.0 if command[1].endswith("train.py") else 2500.0}

    monkeypatch.setattr(suite, "run_measured", fake_run)
    path = suite.run_suite(["translation"], Options(seeds=[0, 1], eval_at_end=True, omp_passive=True, tag="t"))
    assert path.name.endswith("-test-suite-t.json")
    assert [env for _, env in launched] == [{"OMP_WAIT_POLICY": "PASSIVE"}] * 4
    rows = json.loads(path.read_text())["rows"]
    assert [(r["run"], r["seed"], r["value"]) for r in rows] == [
        ("ours", 0, 30.0), ("transformers.Trainer", 0, 29.0), ("ours", 1, 31.0), ("transformers.Trainer", 1, 29.0),
        ("ours, mean of 2 seeds", "0 1", 30.5), ("transformers.Trainer, mean of 2 seeds", "0 1", 29.0)]
    assert rows[0]["other_metrics"] == {"chrf": 50.0} and rows[1]["other_metrics"] == {"chrf": 49.0}
    assert rows[0]["best_value"] == 31.0 and rows[0]["speed_vs_trainer"] == 1.5 and rows[0]["memory_vs_trainer"] == 0.8
    assert rows[4]["value_range"] == "30-31" and rows[4]["speed_vs_trainer"] == 1.5
    expected = ("python -m benchmarks run --tasks translation --seeds 0 1 --eval_at_end --omp_passive --tag t")
    assert {r["command"] for r in rows} == {expected}


def test_recipe_replaces_one_tasks_recipe_on_both_sides(tmp_path):
    long = "tasks/translation/recipes/multi30k_long.yaml"
    options = _parse(["--tasks", "translation", "--recipe", long, "--tag", "long"])
    ours, trainer = (run.command for run in plan(pairs()["translation"], options, tmp_path))
    assert _value(ours, "--config") == _value(trainer, "--recipe") == long
    assert options.command(["translation"]).endswith(f"--tag long --recipe {long}")
    from benchmarks.suite import check_tasks

    with pytest.raises(SystemExit, match="one task's recipe"):
        check_tasks(["translation", "text_classification"], options)
    with pytest.raises(SystemExit, match="no such file"):
        check_tasks(["translation"], Options(recipe="tasks/translation/recipes/missing.yaml"))
