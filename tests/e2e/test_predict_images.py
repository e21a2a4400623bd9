"""predict.py for the image tasks (the text tasks and the list of predict scripts: test_predict.py): train a tiny
model, predict a labelled folder, check the written format, that the metrics equal the engine's on the same data,
unreadable images, a failed run, and one process against two."""
from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from shared.toolkit.cli import main, predict_main
from tests.e2e.predict_helpers import (assert_engine_metrics, fails_midway, one_and_two_process_rows,
                                       predict_file, reset_accelerate)
from tests.helpers import tiny_image_args, tiny_image_data, tiny_vit_dir


# ---------------------------------------------------------------------- image classification
@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("image_predict")
    data = tiny_image_data(tmp / "data", train_per_class=8, validation_per_class=4)
    main("image_classification", tiny_image_args(tiny_vit_dir(tmp / "vit"), data, tmp / "out", "--num_train_epochs",
                                                 "1", "--per_device_eval_batch_size", "5"))
    reset_accelerate()
    return tmp / "out" / "run", data / "validation"


def test_image_classification_top_k_csv_and_unreadable_images(image_run, tmp_path, capsys):
    run, validation = image_run
    predict_file("image_classification", run / "best", validation, tmp_path / "p.csv", "--top_k", "2")
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    images = sorted(p for p in validation.rglob("*.png"))
    assert [Path(r["image"]) for r in rows] == images
    assert set(rows[0]) == {"image", "label_1", "score_1", "label_2", "score_2"}
    assert all(float(r["score_1"]) >= float(r["score_2"]) for r in rows)
    assert_engine_metrics(run, tmp_path / "p.csv")
    reset_accelerate()
    broken = tmp_path / "new"
    broken.mkdir()
    for image in images[:3]:
        (broken / image.name).write_bytes(image.read_bytes())
    (broken / "zz_broken.png").write_bytes(b"not an image")
    predict_file("image_classification", run / "best", broken, tmp_path / "new.csv")
    assert len(list(csv.DictReader((tmp_path / "new.csv").open()))) == 3
    assert "skipping 1 unreadable image(s) of 4" in capsys.readouterr().out
    reset_accelerate()
    with pytest.raises(SystemExit) as exit_info:
        predict_file("image_classification", run / "best", broken, tmp_path / "strict.csv", "--strict")
    assert exit_info.value.code == 2 and "zz_broken.png: unreadable image" in capsys.readouterr().err


def test_image_classification_failure_leaves_no_output(image_run, tmp_path, monkeypatch):
    run, validation = image_run
    fails_midway(monkeypatch, "image_classification", run / "best", validation, tmp_path / "p.csv")


@pytest.mark.slow
def test_image_classification_two_processes_write_the_file_one_does(image_run, tmp_path):
    run, validation = image_run
    one, two = one_and_two_process_rows("image_classification", run / "best", validation, tmp_path)
    assert len(two) == len(one) == 12
    for a, b in zip(one, two):
        assert (a["image"], a["label_1"]) == (b["image"], b["label_1"])
        assert float(a["score_1"]) == pytest.approx(float(b["score_1"]), abs=1e-5)
    assert json.loads((tmp_path / "predict_results.json").read_text())["predict_samples"] == 12


# ---------------------------------------------------------------------- object detection
@pytest.fixture(scope="module")
def detection_run(tmp_path_factory):
    from transformers import ConditionalDetrImageProcessor

    from tasks.object_detection.modeling_dense_detector import DenseDetectorConfig, DenseDetectorForObjectDetection
    from tasks.object_detection.sample_data import CLASSES, write_dataset

    tmp = tmp_path_factory.mktemp("detection_predict")
    torch.manual_seed(0)
    config = DenseDetectorConfig(backbone="test_convnext", out_indices=[1, 2, 3], neck_channels=32, head_convs=1,
                                 num_labels=len(CLASSES))
    DenseDetectorForObjectDetection(config).save_pretrained(tmp / "model")
    ConditionalDetrImageProcessor(size={"height": 64, "width": 64}, do_pad=False, image_mean=[0.5] * 3,
                                  image_std=[0.5] * 3).save_pretrained(tmp / "model")
    data = write_dataset(tmp / "shapes", {"train": 16, "validation": 6}, size=64, colour_coded=True)
    main("object_detection", [
        "--model_name_or_path", str(tmp / "model"), "--train_dir", str(data / "train"), "--validation_dir",
        str(data / "validation"), "--output_dir", str(tmp / "out"), "--run_name", "run", "--max_train_steps", "4",
        "--learning_rate", "5e-3", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "4",
        "--mixed_precision", "no", "--save_strategy", "no", "--eval_strategy", "end", "--seed", "0",
        "--cpu_threads", "1", "--freeze_backbone_batchnorm", "false", "--channels_last", "false"])
    reset_accelerate()
    return tmp / "out" / "run", data / "validation"


def test_object_detection_coco_results_and_drawings(detection_run, tmp_path):
    from tasks.object_detection.data import ANNOTATION_FILE

    run, validation = detection_run
    predict_file("object_detection", run / "best", validation, tmp_path / "d.json", "--draw_dir",
                 str(tmp_path / "drawn"))
    results = json.loads((tmp_path / "d.json").read_text())
    coco = json.loads((validation / ANNOTATION_FILE).read_text())
    sizes = {image["id"]: (image["width"], image["height"]) for image in coco["images"]}
    categories = {c["id"] for c in coco["categories"]}
    assert results and {r["image_id"] for r in results} <= set(sizes)
    for entry in results:
        x, y, w, h = entry["bbox"]
        width, height = sizes[entry["image_id"]]
        assert entry["category_id"] in categories and 0 <= entry["score"] <= 1
        assert -0.01 <= x and -0.01 <= y and w >= 0 and h >= 0 and x + w <= width + 0.01 and y + h <= height + 0.01
    assert len(list((tmp_path / "drawn").iterdir())) == len(coco["images"])
    assert_engine_metrics(run, tmp_path / "d.json")


# ---------------------------------------------------------------------- semantic segmentation
@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    from tasks.semantic_segmentation.sample_data import write_dataset

    tmp = tmp_path_factory.mktemp("segmentation_predict")
    torch.manual_seed(0)
    config = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
                             patch_sizes=[3, 3], strides=[2, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                             decoder_hidden_size=32, num_labels=2)
    SegformerForSemanticSegmentation(config).save_pretrained(tmp / "model")
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp / "model")
    data = write_dataset(tmp / "scenes", {"train": 16, "validation": 6}, size=32, colour_coded=True)
    main("semantic_segmentation", [
        "--model_name_or_path", str(tmp / "model"), "--train_dir", str(data / "train"), "--validation_dir",
        str(data / "validation"), "--output_dir", str(tmp / "out"), "--run_name", "run", "--max_train_steps", "4",
        "--learning_rate", "5e-3", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "4",
        "--mixed_precision", "no", "--save_strategy", "no", "--eval_strategy", "end", "--seed", "0",
        "--cpu_threads", "1"])
    reset_accelerate()
    return tmp / "out" / "run", data / "validation"


def test_semantic_segmentation_index_masks_and_overlays(segmentation_run, tmp_path):
    run, validation = segmentation_run
    predict_file("semantic_segmentation", run / "best", validation, tmp_path / "masks", "--overlay_dir",
             str(tmp_path / "overlays"))
    images = sorted((validation / "images").iterdir())
    masks = sorted((tmp_path / "masks").iterdir())
    assert [m.name for m in masks] == [i.stem + ".png" for i in images]
    labels = json.loads((run / "best" / "config.json").read_text())["id2label"]
    for mask, image in zip(masks, images):
        with Image.open(mask) as opened, Image.open(image) as photo:
            assert opened.mode == "P" and opened.size == photo.size
            assert set(np.unique(np.asarray(opened)).tolist()) <= set(range(len(labels)))
    assert len(list((tmp_path / "overlays").iterdir())) == len(images)
    assert_engine_metrics(run, tmp_path / "masks")


def test_segmentation_output_must_be_a_folder(segmentation_run, tmp_path, capsys):
    run, validation = segmentation_run
    with pytest.raises(SystemExit):
        predict_file("semantic_segmentation", run / "best", validation, tmp_path / "masks.png")
    assert "give a folder name" in capsys.readouterr().err


# ---------------------------------------------------------------------- two runs in one process
@pytest.mark.parametrize("task, fixture", [("image_classification", "image_run"), ("object_detection", "detection_run"),
                                           ("semantic_segmentation", "segmentation_run")])
def test_a_second_run_in_the_process_reports_only_its_own_skipped_images(task, fixture, request, tmp_path, capsys):
    """One format object serves every run in a process (the tests and a long-lived caller reuse it): what run 1
    skipped is in run 1's closing lines only, and the format holds nothing of it afterwards."""
    from importlib import import_module

    run, validation = request.getfixturevalue(fixture)
    fmt = import_module(f"tasks.{task}.predictions").PREDICTIONS
    images = sorted(validation.rglob("*.png"))[:2]
    broken, clean = tmp_path / "broken", tmp_path / "clean"
    for folder in (broken, clean):
        folder.mkdir()
        for image in images:
            (folder / image.name).write_bytes(image.read_bytes())
    (broken / "zz_broken.png").write_bytes(b"not an image")
    state = copy.deepcopy(vars(fmt))  # deep: a list filled in place is a change too
    outputs = {"image_classification": "p.csv", "object_detection": "d.json", "semantic_segmentation": "masks"}
    for folder in (broken, clean):
        predict_main(task, fmt, ["--model_name_or_path", str(run / "best"), "--input", str(folder), "--output",
                                 str(tmp_path / "out" / folder.name / outputs[task])])
        reset_accelerate()
        assert vars(fmt) == state  # the run's state lives in the Inputs its read() returned
        out = capsys.readouterr().out
        closing = [line for line in out.splitlines() if line.startswith("skipped ")]
        if folder is broken:
            assert len(closing) == 1 and closing[0].startswith("skipped      1 unreadable image(s); first: ") \
                and "zz_broken.png: unreadable image" in closing[0], out
        else:
            assert closing == [] and "unreadable" not in out, out
