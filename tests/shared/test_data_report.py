"""The data report finds duplicates, near-empty rows, train/validation overlap, label counts and image sizes."""
from __future__ import annotations

import json

import datasets
from datasets import ClassLabel, Dataset, DatasetDict
from PIL import Image

from shared.toolkit.cli import main
from shared.inputs.data_report import build_data_report, summary_lines
from tests.helpers import build_task, tiny_text_args


def _text_data() -> DatasetDict:
    features = datasets.Features({"text": datasets.Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    train = {"text": ["Good film", "good   FILM", "bad film", "ok", "great plot", "dull", "fine acting", "x"],
             "label": [1, 0, 0, 1, 1, 1, 1, 1]}
    validation = {"text": ["bad film", "new text here"], "label": [0, 1]}
    return DatasetDict({"train": Dataset.from_dict(train, features=features),
                        "validation": Dataset.from_dict(validation, features=features)})


def test_text_report_counts_duplicates_conflicts_near_empty_overlap_and_labels():
    report = build_data_report(_text_data(), lambda example: None)
    train = report["splits"]["train"]
    assert train["duplicate_rows"] == 1 and train["duplicate_examples"] == [1]  # case and spaces ignored
    assert train["conflicting_label_duplicates"] == 1
    assert train["near_empty_rows"] == 2 and train["near_empty_examples"] == [3, 7]
    assert train["label_counts"] == {"neg": 2, "pos": 6}
    assert report["validation_rows_in_train"] == 1 and report["validation_overlap_examples"] == [0]
    text = "\n".join(summary_lines(report))
    assert "validation rows also in train: 1" in text and "duplicate rows" in text


def test_image_report_reads_sizes_and_finds_identical_files(tmp_path):
    paths = []
    for i, size in enumerate([(40, 30), (64, 48), (40, 30), (4, 50)]):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", size, color=(10 * (i % 2), 0, 0)).save(path)
        paths.append(str(path))
    data = DatasetDict({"train": Dataset.from_dict({"image": paths, "label": [0, 1, 0, 1]}).cast_column(
        "image", datasets.Image())})
    sizes = build_data_report(data, lambda example: None)["splits"]["train"]
    assert sizes["duplicate_rows"] == 1  # images 0 and 2 have the same content under other names
    stats = sizes["image_sizes"]["image"]
    assert stats["width"] == {"min": 4, "median": 40, "max": 64} and stats["height"]["max"] == 50
    assert stats["tiny_images"] == 1 and stats["tiny_examples"] == [3]


def test_task_row_key_overrides_the_default():
    qa = build_task("question_answering")
    rows = {"id": ["a", "b"], "title": ["t", "t"], "context": ["C", "c"], "question": ["Q?", "q?"],
            "answers": [{"text": ["x"], "answer_start": [0]}, {"text": ["y"], "answer_start": [0]}]}
    report = build_data_report(DatasetDict({"train": Dataset.from_dict(rows)}), qa.row_key)
    assert report["splits"]["train"]["duplicate_rows"] == 1


def test_report_is_written_with_the_run(tiny_bert_dir, toy_text_files, tmp_path, capsys):
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out",
                                                "--max_train_steps", "1", "--eval_strategy", "no"))
    report = json.loads((tmp_path / "out" / "run" / "data_report.json").read_text())
    assert report["splits"]["train"]["rows"] == 96 and "validation_rows_in_train" in report
    assert "data report:" in capsys.readouterr().out
