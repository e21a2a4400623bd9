"""Text classification: data formats, bad input, pipeline round trip, pairs, regression, LoRA, class weights."""
from __future__ import annotations

import json
import random

import pytest
from transformers import pipeline

from shared.toolkit.cli import main
from shared.toolkit.config import ConfigError, parse_config
from shared.inputs.data import DataError
from shared.task import get_task
from tests.helpers import tiny_text_args, toy_reviews, write_csv, build_task


def _load(tmp_path, train_rows, validation_rows, header=("text", "label"), *flags):
    train = write_csv(tmp_path / "train.csv", train_rows, header)
    validation = write_csv(tmp_path / "validation.csv", validation_rows, header)
    task = build_task("text_classification", "--train_file", str(train), "--validation_file", str(validation), *flags)
    return task, task.load_data()


def test_string_labels_become_sorted_class_names(tmp_path):
    task, data = _load(tmp_path, toy_reviews(10, 0), toy_reviews(4, 1))
    assert data.labels == ["neg", "pos"]
    assert set(data["validation"]["label"]) == {0, 1}


def test_integer_labels_take_names_from_labels_json(tmp_path):
    rows = [(text, int(label == "pos")) for text, label in toy_reviews(10, 0)]
    (tmp_path / "labels.json").write_text(json.dumps({"0": "negative", "1": "positive"}))
    task, data = _load(tmp_path, rows, rows[:4])
    assert data.labels == ["negative", "positive"]


def test_missing_validation_file_carves_a_stratified_split(tmp_path):
    train = write_csv(tmp_path / "train.csv", toy_reviews(40, 0))
    data = build_task("text_classification", "--train_file", str(train), "--validation_split", "0.25").load_data()
    assert len(data["train"]) == 30 and len(data["validation"]) == 10
    assert sorted(data["validation"]["label"]) == [0] * 5 + [1] * 5


@pytest.mark.parametrize("case, match", [
    ("missing_column", r"train\.csv: missing column\(s\) \['label'\]"),
    ("empty_text", r"train\.csv row 3 \(line 5\): empty text in column 'text'"),
    ("unknown_label", r"validation\.csv row 1 \(line 3\): unknown label 'maybe'"),
    ("single_class", r"train\.csv: column 'label' has a single class"),
    ("missing_file", r"nope\.csv: no such file"),
    ("bad_extension", r"unsupported extension '\.xlsx'"),
])
def test_bad_input_is_refused_with_file_and_row(tmp_path, case, match):
    rows, validation = toy_reviews(8, 0), toy_reviews(4, 1)
    header = ("text", "label")
    if case == "missing_column":
        header = ("text", "sentiment")
    elif case == "empty_text":
        rows[3] = ("   ", "pos")
    elif case == "unknown_label":
        validation[1] = ("the lamp is fine", "maybe")
    elif case == "single_class":
        rows = [(text, "pos") for text, _ in rows]
    train = write_csv(tmp_path / "train.csv", rows, header)
    valid = write_csv(tmp_path / "validation.csv", validation, header)
    if case == "missing_file":
        train = tmp_path / "nope.csv"
    elif case == "bad_extension":
        train = tmp_path / "train.xlsx"
        train.write_text("x")
    task = build_task("text_classification", "--train_file", str(train), "--validation_file", str(valid))
    with pytest.raises(DataError, match=match):
        task.load_data()


def test_bad_flags_exit_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main("text_classification", ["--learning_rate", "-1", "--output_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--learning_rate must be > 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_recipe_sets_defaults_and_flags_override(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("learning_rate: 0.001\nnum_train_epochs: 7\nmax_seq_length: 64\n")
    cfg = parse_config(get_task("text_classification").config_class, ["--config", str(recipe), "--num_train_epochs", "2"])
    assert (cfg.learning_rate, cfg.num_train_epochs, cfg.max_seq_length) == (0.001, 2, 64)
    recipe.write_text("learning_rat: 0.001\n")
    with pytest.raises(ConfigError, match="unknown option"):
        parse_config(get_task("text_classification").config_class, ["--config", str(recipe)])


def test_saved_model_loads_in_the_pipeline_with_label_names(tiny_bert_dir, toy_text_files, tmp_path):
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out"))
    classifier = pipeline("text-classification", model=str(tmp_path / "out" / "run" / "best"))
    predictions = classifier(["the lamp is wonderful and book", "the desk is awful and shoe"])
    assert [p["label"] for p in predictions] == ["pos", "neg"]


def test_sentence_pairs(tiny_bert_dir, tmp_path):
    second = toy_reviews(96, 4)
    random.Random(0).shuffle(second)
    rows = [(a, b, "same" if la == lb else "different") for (a, la), (b, lb) in zip(toy_reviews(96, 3), second)]
    train = write_csv(tmp_path / "train.csv", rows, ("text", "text_pair", "label"))
    valid = write_csv(tmp_path / "valid.csv", rows[:20], ("text", "text_pair", "label"))
    results = main("text_classification", tiny_text_args(tiny_bert_dir, train, valid, tmp_path / "out",
                                                          "--text_pair_column", "text_pair", "--num_train_epochs", "1"))
    assert results["eval_num_samples"] == 20


def test_regression_labels_train_with_mse_and_report_correlation(tiny_bert_dir, tmp_path):
    rows = [(text, 0.9 if label == "pos" else 0.1) for text, label in toy_reviews(96, 5)]
    train = write_csv(tmp_path / "train.csv", rows)
    valid = write_csv(tmp_path / "valid.csv", [(t, 0.85 if "pos" in lab else 0.15) for t, lab in toy_reviews(30, 6)])
    results = main("text_classification", tiny_text_args(tiny_bert_dir, train, valid, tmp_path / "out",
                                                          "--learning_rate", "1e-2"))
    assert results["main_metric"] == "pearson"
    assert results["eval_pearson"] > 0.8 and results["eval_mse"] < 0.05


def test_lora_trains_adapters_and_exports_a_merged_model(tiny_bert_dir, toy_text_files, tmp_path, capsys):
    results = main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out",
                                                          "--use_peft", "--lora_r", "8", "--learning_rate", "3e-2",
                                                          "--num_train_epochs", "10"))
    assert "trainable of" in capsys.readouterr().out
    best = tmp_path / "out" / "run" / "best"
    assert (best / "adapter" / "adapter_config.json").exists()
    assert results["eval_accuracy"] >= 0.9
    classifier = pipeline("text-classification", model=str(best))  # merged weights, no peft needed
    assert classifier("the lamp is wonderful and book")[0]["label"] == "pos"


def test_balanced_class_weights_raise_macro_f1_on_skewed_labels(tiny_bert_dir, tmp_path):
    skewed = [row for row in toy_reviews(200, 7) if row[1] == "pos"][:90] + \
             [row for row in toy_reviews(200, 8) if row[1] == "neg"][:10]
    train = write_csv(tmp_path / "train.csv", skewed)
    valid = write_csv(tmp_path / "valid.csv", toy_reviews(40, 9))
    common = ["--num_train_epochs", "8", "--metric_for_best_model", "f1"]
    plain = main("text_classification", tiny_text_args(tiny_bert_dir, train, valid, tmp_path / "plain", *common))
    weighted = main("text_classification", tiny_text_args(tiny_bert_dir, train, valid, tmp_path / "weighted", *common,
                                                           "--class_weights", "balanced"))
    assert weighted["eval_f1"] > plain["eval_f1"]
