"""The plots are written as real, non-trivial PNG files, and absent series write nothing."""
import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from shared.evaluation.plots import (  # noqa: E402
    plot_confusion_matrix,
    plot_image_grid,
    plot_per_class_bars,
    plot_training_curves,
)

MIN_BYTES = 5_000  # an empty 700x450 canvas compresses to far less than a figure with axes and lines


def assert_png(path, min_bytes=MIN_BYTES):
    assert path.is_file(), path
    assert path.stat().st_size > min_bytes, (path, path.stat().st_size)
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:  # verify() leaves the file unusable: reopen to check the pixels
        pixels = np.asarray(image.convert("L"))
        assert pixels.min() < pixels.max()  # not a blank canvas


def write_jsonl(path, records, trailing=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + trailing, encoding="utf-8")
    return path


def training_records():
    records = []
    for step in range(10, 110, 10):
        records.append({
            "step": step, "epoch": step / 50, "train/loss": 1 / step**0.5, "train/lr": 5e-5 * (1 - step / 110),
            "train/grad_norm": 1.2, "perf/samples_per_sec": 40.1,
        })
        if step % 50 == 0:
            records.append({
                "step": step, "epoch": step / 50, "eval/accuracy": 0.7 + step / 1000, "eval/f1": 0.6 + step / 1000,
                "eval/loss": 0.5 - step / 1000, "eval/confusion_matrix": [[1, 0], [0, 1]], "eval/roc_auc": None,
            })
    return records


def test_training_curves_written(tmp_path):
    metrics = write_jsonl(tmp_path / "metrics.jsonl", training_records(), trailing='{"step": 110, "train/lo')
    paths = plot_training_curves(metrics, tmp_path / "plots")
    names = sorted(p.name for p in paths)
    # eval/loss is on loss.png; the list and None eval values are not numbers and get no file
    assert names == ["eval_accuracy.png", "eval_f1.png", "learning_rate.png", "loss.png"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == names
    for path in paths:
        assert_png(path)


def test_absent_series_write_nothing(tmp_path):
    eval_only = [{"step": 50, "epoch": 1.0, "eval/accuracy": 0.8}, {"step": 100, "epoch": 2.0, "eval/accuracy": 0.85}]
    paths = plot_training_curves(write_jsonl(tmp_path / "eval.jsonl", eval_only), tmp_path / "a")
    assert [p.name for p in paths] == ["eval_accuracy.png"]  # no loss.png, no learning_rate.png
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["eval_accuracy.png"]

    train_only = [{"step": 10, "train/loss": 0.7}, {"step": 20, "train/loss": 0.6}]
    paths = plot_training_curves(write_jsonl(tmp_path / "train.jsonl", train_only), tmp_path / "b")
    assert [p.name for p in paths] == ["loss.png"]

    assert plot_training_curves(write_jsonl(tmp_path / "empty.jsonl", []), tmp_path / "c") == []
    assert plot_training_curves(tmp_path / "missing.jsonl", tmp_path / "d") == []
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


@pytest.mark.parametrize("num_classes", [3, 12, 40])
@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_matrix(tmp_path, num_classes, normalize):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 20, size=(num_classes, num_classes)) + np.eye(num_classes, dtype=int) * 50
    matrix[0] = 0  # a class with no samples must not divide by zero
    labels = [f"class_{i}" for i in range(num_classes)]
    path = plot_confusion_matrix(matrix.tolist(), labels, tmp_path / "sub" / "cm.png", normalize=normalize)
    assert path == tmp_path / "sub" / "cm.png"
    assert_png(path)


def test_confusion_matrix_label_count_must_match(tmp_path):
    with pytest.raises(ValueError, match="does not match"):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b", "c"], tmp_path / "cm.png")


@pytest.mark.parametrize("num_classes", [2, 11, 60])
def test_per_class_bars(tmp_path, num_classes):
    values = list(np.linspace(0.1, 0.95, num_classes))
    values[1] = None  # an undefined per-class score (e.g. IoU of an absent class)
    labels = [f"c{i}" for i in range(num_classes)]
    path = plot_per_class_bars(values, labels, "Per-class F1", tmp_path / "f1.png")
    assert_png(path)


def test_image_grid_mixed_inputs(tmp_path):
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)),  # PIL RGB
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), mode="L"),  # PIL grayscale
        rng.random((24, 24, 3)),  # float HxWx3 in [0, 1]
        rng.integers(0, 256, (24, 24, 3)).astype(np.float32),  # float on the 0-255 scale
        rng.integers(0, 11, (24, 24)),  # a segmentation mask
    ]
    titles = ["true cat / pred dog", "gray", "float", "float 255", "mask"]
    path = plot_image_grid(images, titles, tmp_path / "grid.png", cols=3)
    assert_png(path)
    with Image.open(path) as image:
        assert image.width > image.height  # 3 columns x 2 rows


def test_image_grid_checks_titles(tmp_path):
    with pytest.raises(ValueError, match="titles"):
        plot_image_grid([np.zeros((4, 4, 3))], [], tmp_path / "grid.png")


def test_overview_leads_with_every_moving_curve_and_marks_the_test_result(tmp_path):
    from shared.evaluation.plots import _overview_panels, _read_series, plot_overview

    records = training_records()
    for record in records:
        if "eval/accuracy" in record:
            record["eval/num_samples"] = 30.0  # a count: the same at every evaluation
    records.append({"step": 100, "epoch": 2.0, "test/accuracy": 0.74, "test/loss": 0.41, "test/num_samples": 24.0})
    metrics = write_jsonl(tmp_path / "metrics.jsonl", records)
    panels = dict(_overview_panels(_read_series(metrics)))
    assert list(panels)[:2] == ["loss", "learning rate"]
    assert panels["loss"] == ["train/loss", "eval/loss"] and panels["accuracy"] == ["eval/accuracy"]
    assert set(panels) == {"loss", "learning rate", "accuracy", "f1"}  # constant grad_norm, throughput, counts: none
    assert_png(plot_overview(metrics, tmp_path / "plots" / "overview.png"), min_bytes=20_000)
    assert plot_overview(tmp_path / "missing.jsonl", tmp_path / "x.png") is None


def test_counts_and_flat_series_get_no_figure(tmp_path):
    records = [{"step": s, "eval/accuracy": 0.5 + s / 100, "eval/num_samples": 30.0, "eval/roc_auc": 1.0}
               for s in (10, 20, 30)]
    paths = plot_training_curves(write_jsonl(tmp_path / "metrics.jsonl", records), tmp_path / "plots")
    assert [p.name for p in paths] == ["eval_accuracy.png"]


def test_a_run_writes_the_overview_first(tiny_bert_dir, toy_text_files, tmp_path):
    from shared.toolkit.cli import main
    from tests.helpers import tiny_text_args

    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out", "--test_split",
                                               "0.2", "--num_train_epochs", "2"))
    plots = tmp_path / "out" / "run" / "plots"
    assert_png(plots / "overview.png", min_bytes=20_000)
    assert not (plots / "eval_num_samples.png").exists()
