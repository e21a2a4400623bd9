"""predict.py keeps the training readers' promises: a symbolic link out of the input folder is refused (exit 2, one
`error: ` line naming the link, no traceback) unless `--allow_paths_outside_data`, for a plain image folder
(shared.serving.predict.list_images) and for the labelled folders each vision task reads with its training reader
(segmentation images/ + masks/, a COCO folder); and a text column the reader typed as numbers is refused naming the
file and column instead of reaching the tokenizer. The models are tiny, random-init and never trained: only the
reading is under test, so the predictions themselves are not checked.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from shared.inputs.data import DataError
from shared.serving.predict import list_images
from shared.toolkit.cli import predict_main
from tests.e2e.predict_helpers import reset_accelerate
from tests.e2e.refusals import refusal_line
from tests.helpers import tiny_vit_dir, toy_reviews, write_csv

OUTSIDE = r"a symbolic link that leads outside the data folder .*; pass --allow_paths_outside_data"


def _refused(capsys, task: str, args: list[str]) -> str:
    """predict.py's entry refuses: exit 2, exactly one `error: ` line, no traceback; returns the line."""
    return refusal_line(capsys, lambda: predict_main(task, args=args))[0]


def _move_out(image: Path, outside: Path) -> None:
    """`image` becomes a symbolic link to a copy of itself in `outside` (a folder beside the input)."""
    outside.mkdir(exist_ok=True)
    target = outside / image.name
    shutil.move(image, target)
    image.symlink_to(target)


# ------------------------------------------------------------------ list_images itself
def test_list_images_refuses_a_link_out_unless_allowed(tmp_path):
    folder = tmp_path / "in"
    (folder / "b").mkdir(parents=True)
    for name in ("a.png", "b/c.png", ".hidden/d.png"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(folder / name)
    (folder / "near.png").symlink_to(folder / "a.png")  # a link that stays inside is followed
    Image.new("RGB", (8, 8)).save(tmp_path / "far.png")
    assert list_images(folder) == [folder / "a.png", folder / "b" / "c.png", folder / "near.png"]
    (folder / "b" / "far.png").symlink_to(tmp_path / "far.png")
    with pytest.raises(DataError, match=re.escape(str(folder / "b" / "far.png")) + ": " + OUTSIDE):
        list_images(folder)
    assert folder / "b" / "far.png" in list_images(folder, allow_outside=True)
    (folder / "b" / "far.png").unlink()
    (folder / "elsewhere").symlink_to(tmp_path / "missing", target_is_directory=True)  # same line, target or not
    with pytest.raises(DataError, match=re.escape(str(folder / "elsewhere")) + ": " + OUTSIDE):
        list_images(folder)


def test_the_permission_is_not_inherited_from_the_training_run(tmp_path):
    """predict.py takes its defaults from the run's config.yaml, except --allow_paths_outside_data: a run trained
    with it does not let a later prediction read links out of another folder unasked."""
    from shared.serving.predict import parse_predict_args
    from shared.task import get_task

    (tmp_path / "run" / "best").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("allow_paths_outside_data: true\nmax_seq_length: 7\n")
    task = get_task("text_classification")
    args = ["--model_name_or_path", str(tmp_path / "run" / "best"), "--input", "x.csv", "--output", "p.csv"]
    cfg, _ = parse_predict_args(task, task.prediction_format(), args)
    assert cfg.max_seq_length == 7 and cfg.allow_paths_outside_data is False
    cfg, _ = parse_predict_args(task, task.prediction_format(), args + ["--allow_paths_outside_data"])
    assert cfg.allow_paths_outside_data is True


# ------------------------------------------------------------------ the three image tasks through predict.py
@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from transformers import (ConditionalDetrImageProcessor, SegformerConfig, SegformerForSemanticSegmentation,
                              SegformerImageProcessor)

    from tasks.object_detection.modeling_dense_detector import DenseDetectorConfig, DenseDetectorForObjectDetection
    from tasks.object_detection.sample_data import CLASSES
    from tasks.semantic_segmentation.sample_data import LABELS

    tmp = tmp_path_factory.mktemp("predict_models")
    torch.manual_seed(0)
    segformer = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
                                patch_sizes=[3, 3], strides=[2, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                                decoder_hidden_size=32, num_labels=len(LABELS))
    SegformerForSemanticSegmentation(segformer).save_pretrained(tmp / "segformer")
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp / "segformer")
    detector = DenseDetectorConfig(backbone="test_convnext", out_indices=[1, 2, 3], neck_channels=32, head_convs=1,
                                   num_labels=len(CLASSES), id2label=dict(enumerate(CLASSES)))
    DenseDetectorForObjectDetection(detector).save_pretrained(tmp / "detector")
    ConditionalDetrImageProcessor(size={"height": 64, "width": 64}, do_pad=False).save_pretrained(tmp / "detector")
    return {"image_classification": tiny_vit_dir(tmp / "vit"), "semantic_segmentation": tmp / "segformer",
            "object_detection": tmp / "detector"}


def _plain_folder(tmp: Path) -> tuple[Path, Path]:
    """(input folder, the link in it): two images, one of them a link to a file outside the folder."""
    folder = tmp / "new_images"
    folder.mkdir()
    for name in ("000.png", "001.png"):
        Image.new("RGB", (32, 32), "red").save(folder / name)
    _move_out(folder / "001.png", tmp / "elsewhere")
    return folder, folder / "001.png"


def _segmentation_folder(tmp: Path) -> tuple[Path, Path]:
    """A labelled images/ + masks/ folder (labels.json beside it) whose first image links out."""
    from tasks.semantic_segmentation.sample_data import write_dataset

    folder = write_dataset(tmp / "scenes", {"validation": 2}, size=32) / "validation"
    _move_out(folder / "images" / "000.png", tmp / "elsewhere")
    return folder, folder / "images" / "000.png"


def _coco_folder(tmp: Path) -> tuple[Path, Path]:
    """A COCO folder (images + _annotations.coco.json) whose first image links out."""
    from tasks.object_detection.data import ANNOTATION_FILE
    from tasks.object_detection.sample_data import write_dataset

    folder = write_dataset(tmp / "shapes", {"validation": 2}, size=64) / "validation"
    first = folder / json.loads((folder / ANNOTATION_FILE).read_text())["images"][0]["file_name"]
    _move_out(first, tmp / "elsewhere")
    return folder, first


def _path_table(tmp: Path) -> tuple[Path, Path]:
    """A CSV of image paths beside its images, one row leaving the table's folder by ../ (a real image there)."""
    table, elsewhere = tmp / "table", tmp / "elsewhere"
    table.mkdir()
    elsewhere.mkdir(exist_ok=True)
    Image.new("RGB", (32, 32), "red").save(table / "000.png")
    Image.new("RGB", (32, 32), "blue").save(elsewhere / "far.png")
    write_csv(table / "new.csv", [("000.png",), ("../elsewhere/far.png",)], header=("image",))
    return table / "new.csv", table / "../elsewhere/far.png"


FOLDERS = [("image_classification", _plain_folder, "p.csv"), ("image_classification", _path_table, "p.csv"), ("semantic_segmentation", _plain_folder, "masks"),
           ("semantic_segmentation", _segmentation_folder, "masks"), ("object_detection", _plain_folder, "d.json"),
           ("object_detection", _coco_folder, "d.json")]


@pytest.mark.parametrize("task, make, output", FOLDERS,
                         ids=[f"{task}-{make.__name__.strip('_')}" for task, make, _ in FOLDERS])
def test_predict_refuses_a_link_out_of_its_input_unless_allowed(task, make, output, models, tmp_path, capsys):
    folder, link = make(tmp_path)
    args = ["--model_name_or_path", str(models[task]), "--input", str(folder), "--output", str(tmp_path / output),
            "--mixed_precision", "no"]
    line = _refused(capsys, task, args)
    assert str(link) in line and "outside the data folder" in line and "pass --allow_paths_outside_data" in line, line
    assert not (tmp_path / output).exists()
    reset_accelerate()
    results = predict_main(task, args=args + ["--allow_paths_outside_data"])
    assert results["predict_samples"] == 2 and (tmp_path / output).exists()


# ------------------------------------------------------------------ a text column typed as numbers
def test_predict_refuses_a_text_column_of_numbers(tiny_bert_dir, tmp_path, capsys):
    source = write_csv(tmp_path / "new.csv", [(str(1000 + i),) for i in range(4)], header=("text",))
    args = ["--model_name_or_path", str(tiny_bert_dir), "--input", str(source), "--output", str(tmp_path / "p.csv"),
            "--mixed_precision", "no"]
    line = _refused(capsys, "text_classification", args)
    assert re.match(rf"error: {re.escape(str(source))}: column 'text' is not text: every row was read as a number "
                    r"\(int64\)", line), line
    reset_accelerate()  # the same file with words in it predicts
    write_csv(source, [(text,) for text, _ in toy_reviews(4, 0)], header=("text",))
    assert predict_main("text_classification", args=args)["predict_samples"] == 4
