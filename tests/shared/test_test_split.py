"""Test splits: --test_split carves a seeded, stratified set apart from validation; --test_file / --test_dir are
checked like the other splits; the best model is scored on it once, as evaluating best/ on that split gives."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from torch.utils.data import DataLoader

from shared.toolkit.cli import main
from shared.toolkit.config import ConfigError, parse_config
from shared.inputs.data import DataError
from shared.inputs.splits import ensure_validation
from shared.serving.export import evaluate
from shared.task import get_task
from tests.helpers import tiny_image_args, tiny_text_args, tiny_vit_dir, toy_reviews, write_csv


def _labelled(n: int, classes: int = 3) -> DatasetDict:
    features = Features({"row": Value("int64"), "label": ClassLabel(names=[f"c{i}" for i in range(classes)])})
    return DatasetDict({"train": Dataset.from_dict({"row": list(range(n)), "label": [i % classes for i in range(n)]},
                                                   features=features)})


def _cfg(*args: str):
    return parse_config(get_task("text_classification").config_class, list(args))


def test_test_split_is_seeded_stratified_and_disjoint_from_validation():
    data = ensure_validation(_labelled(300), _cfg("--validation_split", "0.2", "--test_split", "0.1"), "label")
    rows = {name: set(split["row"]) for name, split in data.items()}
    assert sorted(data) == ["test", "train", "validation"]
    assert (len(rows["train"]), len(rows["validation"]), len(rows["test"])) == (210, 60, 30)
    assert not rows["test"] & rows["validation"] and not rows["test"] & rows["train"]
    assert rows["train"] | rows["validation"] | rows["test"] == set(range(300))
    assert Counter(data["test"]["label"]) == {0: 10, 1: 10, 2: 10}  # stratified: every class a third
    again = ensure_validation(_labelled(300), _cfg("--validation_split", "0.2", "--test_split", "0.1"), "label")
    assert again["test"]["row"] == data["test"]["row"]  # seeded
    other = ensure_validation(_labelled(300), _cfg("--validation_split", "0.2", "--test_split", "0.1",
                                                   "--seed", "7"), "label")
    assert set(other["test"]["row"]) != rows["test"]


def test_test_split_leaves_a_given_validation_set_alone_and_is_a_fraction_of_train():
    data = _labelled(200)
    data["validation"] = data["train"].select(range(50))
    carved = ensure_validation(data, _cfg("--test_split", "0.25"), "label")
    assert carved["validation"]["row"] == list(range(50)) and len(carved["test"]) == 50
    assert len(carved["train"]) == 150
    without = ensure_validation(_labelled(200), _cfg(), "label")
    assert "test" not in without  # no test set unless asked for


def test_test_split_flags_are_checked():
    with pytest.raises(ConfigError, match="--test_split must be in"):
        _cfg("--test_split", "1.2")
    with pytest.raises(ConfigError, match="--test_split must be in"):
        _cfg("--test_split", "0.5", "--validation_split", "0.5")
    with pytest.raises(ConfigError, match="cannot go with --test_file"):
        _cfg("--test_split", "0.1", "--test_file", "t.csv")
    data = _labelled(30)
    data["test"] = data["train"]
    with pytest.raises(DataError, match="test data was given as well"):
        ensure_validation(data, _cfg("--test_split", "0.1"), "label")


def _questions(paragraphs: int, per_paragraph: list[int]) -> DatasetDict:
    """QA-shaped rows: several questions on each paragraph, the paragraphs of uneven size."""
    rows = [{"context": f"paragraph {p}", "question": f"q{q} on {p}"}
            for p in range(paragraphs) for q in range(per_paragraph[p % len(per_paragraph)])]
    return DatasetDict({"train": Dataset.from_list([{"row": i, **r} for i, r in enumerate(rows)])})


def test_grouped_splits_never_share_a_paragraph_and_are_seeded():
    data = ensure_validation(_questions(60, [1, 3, 5, 2]), _cfg("--validation_split", "0.2", "--test_split", "0.1"),
                             group_column="context")
    contexts = {name: set(split["context"]) for name, split in data.items()}
    assert not contexts["train"] & contexts["validation"] and not contexts["train"] & contexts["test"]
    assert not contexts["validation"] & contexts["test"]
    assert sum(len(split) for split in data.values()) == 165 and len(contexts["train"]) > 30
    # at least the asked-for rows (33 = ceil(0.2 x 165); 16 = round(0.1 x 165)), at most one paragraph (5) more
    assert 33 <= len(data["validation"]) < 33 + 5 and 16 <= len(data["test"]) < 16 + 5
    again = ensure_validation(_questions(60, [1, 3, 5, 2]), _cfg("--validation_split", "0.2", "--test_split", "0.1"),
                              group_column="context")
    assert again["test"]["row"] == data["test"]["row"] and again["validation"]["row"] == data["validation"]["row"]
    other = ensure_validation(_questions(60, [1, 3, 5, 2]), _cfg("--validation_split", "0.2", "--seed", "7"),
                              group_column="context")
    assert set(other["validation"]["context"]) != contexts["validation"]


def test_one_paragraph_cannot_be_split_and_says_so():
    with pytest.raises(DataError, match="every row has the same 'context'"):
        ensure_validation(_questions(1, [6]), _cfg("--validation_split", "0.2"), group_column="context")


def test_a_bad_test_file_is_refused_like_validation(tiny_bert_dir, toy_text_files, tmp_path, capsys):
    test = write_csv(tmp_path / "test.csv", [("the lamp is great", "pos"), ("the desk is poor", "meh")])
    with pytest.raises(SystemExit) as stop:
        main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out",
                                                   "--test_file", str(test)))
    assert stop.value.code == 2
    assert f"{test} row 1 (line 3): unknown label 'meh'" in capsys.readouterr().err


def _score_saved(task_name: str, args: list[str], model_dir) -> dict:
    """The task's metrics of the saved model on the test split the same flags give, outside the engine."""
    task_class = get_task(task_name)
    cfg = parse_config(task_class.config_class, [*args, "--model_name_or_path", str(model_dir)])
    task = task_class(cfg)
    data = task.load_data()
    processor = task.build_processor(data)
    model = task.build_model(data.labels).float().eval()
    dataset = task.preprocess(processor, data["test"], "test", data)
    loader = DataLoader(dataset, batch_size=cfg.per_device_eval_batch_size, collate_fn=task.collate_fn(processor))
    return evaluate(task, task.metric(data.labels), model, list(loader), data["test"])


def _assert_scored_with_best(run, results: dict, scored: dict, main_metric: str) -> None:
    test = json.loads((run / "test_results.json").read_text())
    assert test["test_model_step"] == results["best_step"]
    assert test[f"test_{main_metric}"] == pytest.approx(scored[main_metric], abs=1e-6)
    assert results[f"test_{main_metric}"] == test[f"test_{main_metric}"]
    assert "eval_" + main_metric in results  # validation results stay where they were
    info = json.loads((run / "best" / "training_info.json").read_text())
    assert info["test_metrics"][main_metric] == test[f"test_{main_metric}"]
    assert "test_metrics" not in json.loads((run / "last" / "training_info.json").read_text())
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r[f"test/{main_metric}"] for r in history if f"test/{main_metric}" in r] == [test[f"test_{main_metric}"]]


def test_text_test_split_is_scored_once_with_the_best_model(tiny_bert_dir, toy_text_files, tmp_path):
    args = tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out", "--test_split", "0.25",
                          "--num_train_epochs", "4")
    results = main("text_classification", args)
    run = tmp_path / "out" / "run"
    assert json.loads((run / "splits.json").read_text())["test"]["rows"] == 24
    report = json.loads((run / "data_report.json").read_text())
    assert report["splits"]["test"]["rows"] == 24 and "test_rows_in_validation" in report
    _assert_scored_with_best(run, results, _score_saved("text_classification", args, run / "best"), "accuracy")
    assert (run / "test" / "plots" / "confusion_matrix.png").exists()
    card = (run / "best" / "README.md").read_text()
    assert card.index("## Validation results") < card.index("## Test results")


def test_resume_refuses_another_test_split(tiny_bert_dir, toy_text_files, tmp_path, capsys):
    test = write_csv(tmp_path / "test.csv", toy_reviews(20, seed=5))
    args = tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out", "--test_file", str(test),
                          "--num_train_epochs", "1", "--save_strategy", "epoch")
    main("text_classification", args)
    write_csv(test, toy_reviews(20, seed=6))  # as many rows, other ones
    with pytest.raises(SystemExit):  # training may continue inexactly when asked; the test set stays the run's own
        main("text_classification", [*args, "--resume_from_checkpoint", "latest", "--ignore_resume_mismatch"])
    assert "the test split(s) differ from those this run began with" in capsys.readouterr().err


def test_text_test_file_is_read_and_scored(tiny_bert_dir, toy_text_files, tmp_path):
    test = write_csv(tmp_path / "test.csv", toy_reviews(20, seed=5))
    args = tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out", "--test_file", str(test),
                          "--num_train_epochs", "2")
    results = main("text_classification", args)
    assert results["test_num_samples"] == 20
    _assert_scored_with_best(tmp_path / "out" / "run", results,
                             _score_saved("text_classification", args, tmp_path / "out" / "run" / "best"), "accuracy")


def test_image_test_dir_is_checked_and_scored(tmp_path, capsys):
    from tasks.image_classification.sample_data import write_image_folder
    from tests.helpers import IMAGE_CLASSES

    data = write_image_folder(tmp_path / "img", {"train": 8, "validation": 4, "test": 4}, size=32,
                              classes=IMAGE_CLASSES, colour_coded=True)
    model = tiny_vit_dir(tmp_path / "vit")
    args = tiny_image_args(model, data, tmp_path / "out", "--test_dir", str(data / "test"), "--num_train_epochs", "1")
    results = main("image_classification", args)
    assert results["test_num_samples"] == 12
    run = tmp_path / "out" / "run"
    _assert_scored_with_best(run, results, _score_saved("image_classification", args, run / "best"), "accuracy")

    (data / "test" / "hexagon").mkdir()
    (data / "test" / "circle" / "000.png").rename(data / "test" / "hexagon" / "000.png")
    with pytest.raises(SystemExit):
        main("image_classification", tiny_image_args(model, data, tmp_path / "bad", "--test_dir", str(data / "test")))
    assert "class 'hexagon' of --test_dir has no training folder" in capsys.readouterr().err


def test_detection_test_dir_is_checked_and_scored(tmp_path, capsys):
    from transformers import ConditionalDetrImageProcessor

    from tasks.object_detection.data import ANNOTATION_FILE
    from tasks.object_detection.modeling_dense_detector import DenseDetectorConfig, DenseDetectorForObjectDetection
    from tasks.object_detection.sample_data import CLASSES, write_dataset

    model = tmp_path / "detector"
    torch.manual_seed(0)
    DenseDetectorForObjectDetection(DenseDetectorConfig(backbone="test_convnext", out_indices=[1, 2, 3],
                                                        neck_channels=32, head_convs=1,
                                                        num_labels=len(CLASSES))).save_pretrained(model)
    ConditionalDetrImageProcessor(size={"height": 64, "width": 64}, do_pad=False).save_pretrained(model)
    data = write_dataset(tmp_path / "shapes", {"train": 16, "validation": 8, "test": 8}, size=64, colour_coded=True)
    flags = lambda out: ["--model_name_or_path", str(model), "--train_dir", str(data / "train"), "--validation_dir",
                         str(data / "validation"), "--test_dir", str(data / "test"), "--output_dir", str(out),
                         "--run_name", "run", "--num_train_epochs", "1", "--per_device_train_batch_size", "8",
                         "--mixed_precision", "no", "--save_strategy", "no", "--cpu_threads", "1",
                         "--channels_last", "false"]
    args = flags(tmp_path / "out")
    results = main("object_detection", args)
    assert "test_map" in results and "test_map_50" in results
    run = tmp_path / "out" / "run"
    _assert_scored_with_best(run, results, _score_saved("object_detection", args, run / "best"), "map")

    coco = json.loads((data / "test" / ANNOTATION_FILE).read_text())
    coco["annotations"][0]["bbox"] = [60, 10, 30, 20]
    (data / "test" / ANNOTATION_FILE).write_text(json.dumps(coco))
    with pytest.raises(SystemExit):
        main("object_detection", flags(tmp_path / "bad"))
    assert "outside the 64x64 image" in capsys.readouterr().err


def test_question_answering_test_split_decodes_spans_from_its_raw_examples(tiny_bert_dir, tmp_path):
    args = ["--model_name_or_path", str(tiny_bert_dir), "--output_dir", str(tmp_path / "out"), "--run_name", "run",
            "--max_train_samples", "48", "--max_eval_samples", "16", "--test_split", "0.05", "--max_seq_length", "64",
            "--doc_stride", "16", "--num_train_epochs", "1", "--mixed_precision", "no", "--save_strategy", "no",
            "--per_device_train_batch_size", "16"]
    results = main("question_answering", args)
    run = tmp_path / "out" / "run"
    assert "test_f1" in results and "test_exact_match" in results
    _assert_scored_with_best(run, results, _score_saved("question_answering", args, run / "best"), "f1")
    answers = json.loads((run / "test" / "predictions.json").read_text())
    assert len(answers) == 30


def test_translation_test_split_is_scored_with_the_best_model_and_its_tokenizer(tmp_path):
    """The test split is generated with the model rebuilt from best/ by the task (its build_model attaches the
    tokenizer eval_step decodes with; a bare from_pretrained had none and ended the run in an AttributeError)."""
    words = ["ka", "lo", "mi", "ta", "su", "ne"]
    rows = [{"src": " ".join(words[(i + k) % 6] for k in range(3)), "tgt": " ".join(words[(i + k) % 6] for k in range(3))}
            for i in range(60)]
    files = {}
    for name, part in (("train", rows[:48]), ("valid", rows[48:])):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(r) + "\n" for r in part))
    args = ["--train_file", str(files["train"]), "--validation_file", str(files["valid"]), "--source_lang", "src",
            "--target_lang", "tgt", "--output_dir", str(tmp_path / "out"), "--run_name", "run", "--test_split", "0.25",
            "--d_model", "32", "--ffn_dim", "64", "--encoder_layers", "1", "--decoder_layers", "1",
            "--attention_heads", "2", "--num_train_epochs", "2", "--per_device_train_batch_size", "16",
            "--num_beams", "1", "--max_target_length", "8", "--save_strategy", "no", "--mixed_precision", "no"]
    results = main("translation", args)
    run = tmp_path / "out" / "run"
    assert json.loads((run / "splits.json").read_text())["test"]["rows"] == 12
    assert "test_bleu" in results and "test_chrf" in results
    _assert_scored_with_best(run, results, _score_saved("translation", args, run / "best"), "bleu")
