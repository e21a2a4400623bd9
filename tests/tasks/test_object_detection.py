"""Object detection: a tiny dense detector learns generated shapes, overfits to mAP@0.5 ~1, round-trips through the
pipeline (with and without the project), boxes follow augmentation, DETR backbones keep timm's features, bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import datasets
import pytest
import timm
import torch
from PIL import Image
from transformers import ConditionalDetrImageProcessor, pipeline

from shared.toolkit.cli import main
from shared.inputs.data import DataError
from tasks.object_detection.data import ANNOTATION_FILE, BoxAugment, check_hub_split, hub_label_names
from tasks.object_detection.modeling_dense_detector import DenseDetectorConfig, DenseDetectorForObjectDetection
from tasks.object_detection.sample_data import CLASSES, write_coco_split, write_dataset
from tests.helpers import assert_merged_lora_export

SIZE = 96  # image side: 12 x 12 locations at stride 8


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory):
    """A random-init dense detector on timm's 0.2 M-parameter test ConvNeXt (LayerNorm, GroupNorm: no BatchNorm
    statistics to settle), with a stock sigmoid post-processor."""
    out = tmp_path_factory.mktemp("tiny_detector")
    config = DenseDetectorConfig(backbone="test_convnext", out_indices=[1, 2, 3], neck_channels=32, head_convs=1,
                                 num_labels=len(CLASSES))
    torch.manual_seed(0)
    DenseDetectorForObjectDetection(config).save_pretrained(out)
    ConditionalDetrImageProcessor(size={"height": SIZE, "width": SIZE}, do_pad=False, image_mean=[0.5] * 3,
                                  image_std=[0.5] * 3).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Colour-coded shapes, 1-3 per image: learnable from scratch in seconds."""
    return write_dataset(tmp_path_factory.mktemp("shapes"), {"train": 48, "validation": 16}, size=SIZE,
                         colour_coded=True)


def _args(model, train, validation, out, *extra) -> list[str]:
    return ["--model_name_or_path", str(model), "--train_dir", str(train), "--validation_dir", str(validation),
            "--output_dir", str(out), "--run_name", "run", "--learning_rate", "5e-3", "--per_device_train_batch_size",
            "8", "--mixed_precision", "no", "--save_strategy", "no", "--seed", "0", "--cpu_threads", "1",
            "--warmup_ratio", "0.0", "--freeze_backbone_batchnorm", "false", "--channels_last", "false", *extra]


def _history(run_dir, key) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row[key] for row in rows if key in row]


def test_tiny_detector_learns_the_generated_shapes_and_round_trips(tiny_detector, shapes, tmp_path):
    out = tmp_path / "out"
    results = main("object_detection", _args(tiny_detector, shapes / "train", shapes / "validation", out,
                                             "--num_train_epochs", "12", "--eval_strategy", "steps",
                                             "--eval_steps", "3", "--logging_steps", "3",
                                             "--backbone_learning_rate", "5e-3"))
    losses, maps = _history(out / "run", "train/loss"), _history(out / "run", "eval/map_50")
    assert losses[-1] < 0.5 * losses[0], losses
    assert max(maps) >= maps[0] + 0.2 and max(maps) >= 0.45, maps  # the first eval follows 3 steps
    assert results["eval_map"] == max(_history(out / "run", "eval/map"))
    assert len(results["eval_per_class_ap"]) == len(CLASSES)
    for figure in ("predictions.png", "precision_recall.png", "per_class_ap.png"):
        assert (out / "run" / "plots" / figure).exists(), figure

    best = out / "run" / "best"
    detector = pipeline("object-detection", model=str(best))
    coco = json.loads((shapes / "validation" / ANNOTATION_FILE).read_text())
    image = coco["images"][0]
    truth = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
    found = detector(str(shapes / "validation" / image["file_name"]), threshold=0.3)
    assert found and {d["label"] for d in found} <= set(CLASSES)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    hits = [t for t in truth if any(d["label"] == names[t["category_id"]] and _iou(d["box"], t["bbox"]) > 0.5
                                    for d in found)]
    assert hits, (found, truth)  # boxes come back in pixels of the original image, with the right label


def test_a_transformers_detector_folder_trains_and_reloads(shapes, tmp_path):
    """The path online users take (a hub id or folder of DETR, RT-DETR, YOLOS ...): here a tiny random-init
    Conditional DETR folder, its head resized to the data's labels, trained a few steps, reloaded by the pipeline."""
    from transformers import ConditionalDetrConfig, ConditionalDetrForObjectDetection, TimmBackboneConfig

    folder = tmp_path / "tiny_detr"
    config = ConditionalDetrConfig(
        backbone_config=TimmBackboneConfig(backbone="test_convnext", out_indices=[3], freeze_batch_norm_2d=True),
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=10, num_labels=7)
    ConditionalDetrForObjectDetection(config).save_pretrained(folder)
    ConditionalDetrImageProcessor(size={"height": SIZE, "width": SIZE}, do_pad=False).save_pretrained(folder)
    results = main("object_detection", _args(folder, shapes / "train", shapes / "validation", tmp_path / "out",
                                             "--max_train_steps", "4", "--eval_strategy", "steps", "--eval_steps", "4",
                                             "--logging_steps", "2",
                                             "--learning_rate", "1e-4"))
    assert results["eval_num_images"] == 16 and 0.0 <= results["eval_map"] <= 1.0
    detector = pipeline("object-detection", model=str(tmp_path / "out" / "run" / "best"))
    assert type(detector.model).__name__ == "ConditionalDetrForObjectDetection"
    assert detector.model.config.id2label == dict(enumerate(CLASSES))
    assert len(detector(Image.new("RGB", (SIZE, SIZE)), threshold=0.0)) > 0


def _iou(box: dict, xywh: list[float]) -> float:
    ax0, ay0, ax1, ay1 = box["xmin"], box["ymin"], box["xmax"], box["ymax"]
    bx0, by0, bx1, by1 = xywh[0], xywh[1], xywh[0] + xywh[2], xywh[1] + xywh[3]
    inter = max(0, min(ax1, bx1) - max(ax0, bx0)) * max(0, min(ay1, by1) - max(ay0, by0))
    return inter / ((ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter)


def test_lora_adapts_the_backbone_trains_the_heads_and_exports_merged(tiny_detector, shapes, tmp_path, capsys):
    out = tmp_path / "out"
    main("object_detection", _args(tiny_detector, shapes / "train", shapes / "validation", out, "--use_peft",
                                   "--max_train_steps", "4", "--eval_strategy", "end"))
    assert "trainable of" in capsys.readouterr().out
    assert_merged_lora_export(tiny_detector, out / "run" / "best", DenseDetectorForObjectDetection, "backbone.",
                              "heatmap_head.")
    image = shapes / "validation" / json.loads((shapes / "validation" / ANNOTATION_FILE).read_text())["images"][0][
        "file_name"]
    assert pipeline("object-detection", model=str(out / "run" / "best"))(str(image), threshold=0.0)


def test_overfits_two_images_to_map50_near_one(tiny_detector, tmp_path):
    """Box format, image size and category ids (COCO ids start at 1 here) are right end to end only if
    a model that memorises two images scores mAP@0.5 ~1 on them."""
    folder = write_coco_split(tmp_path / "two", 2, size=SIZE, seed=3, colour_coded=True)
    results = main("object_detection", _args(tiny_detector, folder, folder, tmp_path / "out",
                                             "--max_train_steps", "75", "--per_device_train_batch_size", "2",
                                             "--eval_strategy", "steps", "--eval_steps", "25", "--logging_steps", "25",
                                             "--crop_probability", "0", "--hflip", "false", "--colour_jitter", "false",
                                             "--backbone_learning_rate", "5e-3"))
    assert results["eval_map_50"] >= 0.95, results


def test_saved_folder_loads_with_trust_remote_code_without_the_project(tiny_detector, tmp_path):
    """auto_map + the copied modeling file: a fresh interpreter that never imports the project loads it."""
    code = ("import sys; from transformers import pipeline; "
            f"p = pipeline('object-detection', model={str(tiny_detector)!r}, trust_remote_code=True); "
            "assert not any(m == 'tasks' or m.startswith('tasks.') for m in sys.modules), 'project imported'; "
            f"print(type(p.model).__module__, len(p(Image.new('RGB', ({SIZE}, {SIZE})), threshold=0.0)))")
    env = {**os.environ, "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", "from PIL import Image; " + code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    module, count = result.stdout.split()
    assert "modeling_dense_detector" in module and not module.startswith("tasks") and int(count) > 0
    saved = json.loads((tiny_detector / "config.json").read_text())
    assert saved["auto_map"]["AutoModelForObjectDetection"].endswith("DenseDetectorForObjectDetection")


def test_eval_forward_keeps_one_peak_per_object(tiny_detector):
    """The stock post-processors do no NMS: the model itself must not return neighbouring duplicates."""
    model = DenseDetectorForObjectDetection.from_pretrained(tiny_detector).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, SIZE, SIZE))
        heat = model.heatmap_head(model._features(torch.randn(1, 3, SIZE, SIZE)))
    kept = out.logits[0] > -1e3  # non-peaks are pushed to -1e4
    assert kept.sum() < heat[0].numel() / 3  # a 3x3 peak keeps at most one location in four
    assert out.logits.shape[1] <= model.config.max_detections and out.pred_boxes.shape[-1] == 4
    assert ((out.pred_boxes >= 0) & (out.pred_boxes <= 1)).all()


def test_augmentation_moves_boxes_with_the_pixels():
    """After crops, flips and resizing, every kept box still frames its red square."""
    image = Image.new("RGB", (200, 120), (20, 20, 20))
    image.paste((255, 0, 0), (30, 40, 90, 100))
    processor = ConditionalDetrImageProcessor(size={"height": 64, "width": 96}, do_pad=False)
    augment = BoxAugment(processor, hflip=True, crop_probability=1.0, colour=False)
    torch.manual_seed(0)
    for _ in range(20):
        pixels, boxes, labels = augment(image, [[30, 40, 60, 60]], [0])
        assert pixels.shape == (3, 64, 96) and pixels.dtype == torch.uint8
        for cx, cy, w, h in boxes.tolist():
            x0, y0, x1, y1 = (round(v) for v in ((cx - w / 2) * 96, (cy - h / 2) * 64, (cx + w / 2) * 96,
                                                  (cy + h / 2) * 64))
            inside = pixels[:, y0 + 1:y1 - 1, x0 + 1:x1 - 1].float()
            assert inside[0].mean() > 200 and inside[1].mean() < 60, (x0, y0, x1, y1)
    assert augment.seen == 20 and 0 <= augment.dropped <= 20


def test_detr_backbones_keep_timm_features():
    """The DETR family swaps BatchNorm for a frozen copy; timm's BatchNormAct2d carries the activation, so the
    swap must keep it (freeze_batch_norm_2d=True). Features must equal timm's own for the same weights."""
    from transformers import ConditionalDetrConfig, ConditionalDetrForObjectDetection, RTDetrConfig, \
        RTDetrForObjectDetection

    from tasks.object_detection.models import _timm_backbone

    torch.manual_seed(0)
    reference = timm.create_model("mobilenetv2_100", features_only=True, out_indices=(2, 3, 4)).eval()
    pixels = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = reference(pixels)
    detr = ConditionalDetrForObjectDetection(ConditionalDetrConfig(
        backbone_config=_timm_backbone("mobilenetv2_100", [4]), encoder_layers=1, decoder_layers=1, num_labels=2))
    rtdetr = RTDetrForObjectDetection(RTDetrConfig(
        backbone_config=_timm_backbone("mobilenetv2_100", [2, 3, 4]), encoder_in_channels=[32, 96, 320],
        feat_strides=[8, 16, 32], decoder_layers=1, num_labels=2))
    for backbone, wanted in ((detr.model.backbone.model, expected[-1:]), (rtdetr.model.backbone.model._backbone, expected)):
        assert not backbone.load_state_dict(reference.state_dict(), strict=False).missing_keys
        with torch.no_grad():
            got = backbone.eval()(pixels)
        for a, b in zip(got if isinstance(got, (list, tuple)) else [got], wanted):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def _broken(tmp_path, change) -> str:
    folder = write_coco_split(tmp_path / "bad", 3, size=64, seed=1)
    coco = json.loads((folder / ANNOTATION_FILE).read_text())
    change(coco, folder)
    (folder / ANNOTATION_FILE).write_text(json.dumps(coco))
    return str(folder)


def _set_box(coco, box):
    coco["annotations"][0]["bbox"] = box


@pytest.mark.parametrize("change, message", [
    (lambda c, f: (f / "0001.png").unlink(), r"0001\.png.*not found"),
    (lambda c, f: c["annotations"][0].update(image_id=99), r"annotation 0 .*image_id 99 .*missing image"),
    (lambda c, f: _set_box(c, [50, 10, 30, 20]), r"annotation 0 .*outside the 64x64 image"),
    (lambda c, f: _set_box(c, [5, 5, 0, 10]), r"annotation 0 .*non-positive size"),
    (lambda c, f: c["annotations"][0].update(category_id=7), r"annotation 0 .*unknown category id 7"),
    (lambda c, f: (f / "0002.png").write_bytes(b"not an image"), r"0002\.png: unreadable image"),
])
def test_bad_input_names_the_file_and_reason(tmp_path, change, message):
    folder = _broken(tmp_path, change)
    with pytest.raises(DataError, match=message) as error:
        from tasks.object_detection.data import load_coco_folders
        load_coco_folders(folder, None)
    assert ANNOTATION_FILE in str(error.value)


def test_bad_input_stops_the_cli_before_training(tmp_path, capsys):
    folder = _broken(tmp_path, lambda c, f: _set_box(c, [5, 5, -2, 10]))
    with pytest.raises(SystemExit):
        main("object_detection", ["--train_dir", folder, "--validation_dir", folder, "--output_dir", str(tmp_path)])
    assert "non-positive size" in capsys.readouterr().err


def test_hub_layout_is_checked_like_local_files():
    """cppe-5 layout: objects {id, area, bbox [x, y, w, h], category ClassLabel}."""
    features = datasets.Features({
        "image_id": datasets.Value("int64"), "image": datasets.Image(), "width": datasets.Value("int32"),
        "height": datasets.Value("int32"),
        "objects": datasets.List({"id": datasets.Value("int64"), "area": datasets.Value("float32"),
                                  "bbox": datasets.List(datasets.Value("float32"), length=4),
                                  "category": datasets.ClassLabel(names=["coverall", "mask"])})})
    image = Image.new("RGB", (40, 30))
    rows = {"image_id": [5], "image": [image], "width": [40], "height": [30],
            "objects": [[{"id": 1, "area": 50.0, "bbox": [1, 2, 10, 5], "category": 1}]]}
    dataset = datasets.Dataset.from_dict(rows, features=features)
    assert hub_label_names(dataset, "cppe") == ["coverall", "mask"]
    checked = check_hub_split(dataset, "cppe[train]", 2)
    assert checked[0]["objects"] == {"bbox": [[1.0, 2.0, 10.0, 5.0]], "category": [1]}
    rows["objects"] = [[{"id": 1, "area": 50.0, "bbox": [35, 2, 10, 5], "category": 1}]]
    with pytest.raises(DataError, match=r"cppe\[train\] row 0 box 0: .*outside the 40x30 image"):
        check_hub_split(datasets.Dataset.from_dict(rows, features=features), "cppe[train]", 2)
