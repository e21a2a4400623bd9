"""training_info.json beside every saved model: what the card is rendered from, what demo and export read;
no absolute local path in what --push_to_hub would upload."""
from __future__ import annotations

import json
import re

from shared.training.checkpoint import base_model_id, portable, training_info, write_model_card
from shared.toolkit.cli import main
from shared.toolkit.config import parse_config
from shared.serving.export import _task_name
from shared.task import get_task
from tests.helpers import tiny_text_args, toy_reviews, write_csv

ABSOLUTE = re.compile(r"(^|[\s`'\"=(\[,:])/[\w.-]+/")  # a path from the root, wherever it stands in the text


def test_best_and_last_carry_training_info_and_a_card_rendered_from_it(tiny_bert_dir, toy_text_files, tmp_path):
    test = write_csv(tmp_path / "test.csv", toy_reviews(20, seed=5))
    results = main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out",
                                                         "--test_file", str(test), "--num_train_epochs", "2"))
    run = tmp_path / "out" / "run"
    best, last = (json.loads((run / name / "training_info.json").read_text()) for name in ("best", "last"))
    assert best["task"] == "text_classification" and best["pipeline_tag"] == "text-classification"
    assert best["labels"] == ["neg", "pos"] and best["steps"] == results["best_step"]
    assert best["validation_metrics"]["accuracy"] == results["eval_accuracy"]
    assert best["test_metrics"]["accuracy"] == results["test_accuracy"] and "test_metrics" not in last
    assert last["steps"] == results["global_step"]
    assert best["data"]["files"] == {"train_file": f"{tmp_path.name}/train.csv",
                                     "validation_file": f"{tmp_path.name}/validation.csv",
                                     "test_file": f"{tmp_path.name}/test.csv"}
    assert best["data"]["rows"] == {"train": 96, "validation": 30, "test": 20}
    assert best["base_model"] is None and best["base_model_name"] == f"{tiny_bert_dir.parent.name}/{tiny_bert_dir.name}"
    assert {"torch", "transformers", "accelerate", "datasets"} <= set(best["versions"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", best["date"]) and best["command"]
    for folder in (run / "best", run / "last"):
        for name in ("README.md", "training_info.json"):
            text = (folder / name).read_text()
            assert str(tmp_path) not in text and not ABSOLUTE.search(text), (name, ABSOLUTE.search(text))
    card = (run / "best" / "README.md").read_text()
    validation, test_part = card.split("## Test results")
    assert "## Validation results" in validation and f"| accuracy | {results['eval_accuracy']:.4f} |" in validation
    assert f"| accuracy | {results['test_accuracy']:.4f} |" in test_part
    assert "## Test results" not in (run / "last" / "README.md").read_text()
    assert _task_name(run / "best", None) == "text_classification"


def test_a_packaged_backbone_is_named_by_its_hub_id():
    assert base_model_id("minilm") == "sentence-transformers/all-MiniLM-L6-v2"
    assert base_model_id("mobilenetv2").startswith("timm/mobilenetv2_100")
    assert base_model_id("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    assert base_model_id("marian-scratch") is None  # a task's from-scratch name is no hub repo
    cfg = parse_config(get_task("text_classification").config_class, ["--model_name_or_path", "minilm"])
    info = training_info("text_classification", "text-classification", cfg, {"files": {}}, ["a", "b"], {"f1": 0.5}, 3)
    assert info["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and info["base_model_name"] == "minilm"


def test_card_front_matter_names_the_hub_id_and_states_the_packaged_weights(tmp_path):
    cfg = parse_config(get_task("image_classification").config_class, ["--model_name_or_path", "mobilenetv2"])
    info = training_info("image_classification", "image-classification", cfg, {"files": {}, "rows": {"test": 4}},
                         ["ant", "bee"], {"accuracy": 0.9}, 10)
    write_model_card(tmp_path, {**info, "test_metrics": {"accuracy": 0.8}})
    card = (tmp_path / "README.md").read_text()
    front = card.split("---")[1]
    assert f"base_model: {base_model_id('mobilenetv2')}" in front
    assert "torchvision" in card and "| accuracy | 0.9000 |" in card and "| accuracy | 0.8000 |" in card


def test_paths_become_their_last_two_parts():
    assert portable("/home/me/data/rt/train.csv") == "rt/train.csv"
    assert portable("--train_file=/home/me/data/rt/train.csv") == "--train_file=rt/train.csv"
    assert portable("relative/path.csv") == "relative/path.csv" and portable("minilm") == "minilm"


def test_demo_and_export_read_training_info_and_fall_back_to_an_old_card(tmp_path):
    from shared.serving.demo import model_card

    new = tmp_path / "new"
    new.mkdir()
    (new / "training_info.json").write_text(json.dumps({
        "task": "text_classification", "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "data": {"files": {"train_file": "rt/train.csv"}}, "date": "2026-01-01T00:00:00Z", "steps": 7,
        "validation_metrics": {"accuracy": 0.8125}, "test_metrics": {"accuracy": 0.75}}))
    (new / "README.md").write_text("---\ntags: [finetune-suite, translation]\n---\n")  # the info wins
    panel = model_card(str(new))
    assert "sentence-transformers/all-MiniLM-L6-v2" in panel and "rt/train.csv" in panel
    assert "**Test metrics**" in panel and "0.7500" in panel and "0.8125" in panel
    assert _task_name(new, None) == "text_classification"

    old = tmp_path / "old"  # saved before training_info.json existed: the card's tag still names the task
    old.mkdir()
    (old / "README.md").write_text("---\nbase_model: minilm\ntags: [finetune-suite, translation]\n---\n"
                                   "- Data: train.csv\n")
    (old / "eval_results.json").write_text(json.dumps({"bleu": 12.5}))
    assert _task_name(old, None) == "translation"
    panel = model_card(str(old))
    assert "minilm" in panel and "train.csv" in panel and "12.5000" in panel
