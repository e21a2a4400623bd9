"""Semantic segmentation: a tiny SegFormer learns generated shapes, pipeline round trip, labels, transforms, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from shared.toolkit.cli import main
from shared.toolkit.config import parse_config
from shared.inputs.data import DataError
from shared.task import get_task
from tasks.semantic_segmentation.data import IGNORE, LabelSet, value_table
from tasks.semantic_segmentation.sample_data import LABELS, write_dataset
from tasks.semantic_segmentation.task import upsample
from tasks.semantic_segmentation.transforms import pad_masks, train_transform
from shared.inputs.vision import image_spec
from tests.helpers import assert_merged_lora_export


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """32x32 colour-coded shapes (background, circle, square, triangle; outlines ignored): learnable in seconds."""
    return write_dataset(tmp_path_factory.mktemp("scenes"), {"train": 48, "validation": 12}, size=32,
                         colour_coded=True)


@pytest.fixture(scope="module")
def tiny_segformer(tmp_path_factory):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    out = tmp_path_factory.mktemp("tiny_segformer")
    torch.manual_seed(0)  # the same random init in every session: the learning test must not be a coin toss
    config = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
                             patch_sizes=[3, 3], strides=[2, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                             decoder_hidden_size=32, num_labels=2)
    SegformerForSemanticSegmentation(config).save_pretrained(out)
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def _args(model, data, out, *extra) -> list[str]:
    return ["--model_name_or_path", str(model), "--train_dir", str(data / "train"),
            "--validation_dir", str(data / "validation"), "--output_dir", str(out), "--run_name", "run",
            "--learning_rate", "5e-3", "--lr_scheduler_type", "constant", "--per_device_train_batch_size", "8",
            "--scale_min", "0.8", "--scale_max", "1.25", "--mixed_precision", "no", "--save_strategy", "no",
            "--eval_strategy", "steps", "--eval_steps", "6", "--logging_steps", "6", "--seed", "0",
            "--cpu_threads", "1", *extra]


def test_tiny_segformer_learns_shapes_and_round_trips_through_the_pipeline(tiny_segformer, scenes, tmp_path):
    out = tmp_path / "out"
    results = main("semantic_segmentation", _args(tiny_segformer, scenes, out, "--max_train_steps", "120"))
    history = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    ious = [r["eval/mean_iou"] for r in history if "eval/mean_iou" in r]
    assert ious[0] < 0.4 and max(ious) >= 0.5 and max(ious) > ious[0] + 0.25, ious
    assert results["eval_mean_iou"] == max(ious) and len(results["eval_per_class_iou"]) == len(LABELS)
    for figure in ("overlays.png", "per_class_iou.png"):
        assert (out / "run" / "plots" / figure).exists()
    segmenter = pipeline("image-segmentation", model=str(out / "run" / "best"))
    image = Image.open(scenes / "validation" / "images" / "000.png")
    segments = segmenter(image)
    assert {s["label"] for s in segments} <= set(LABELS) and "background" in {s["label"] for s in segments}
    truth = np.asarray(Image.open(scenes / "validation" / "masks" / "000.png"))
    predicted = np.zeros_like(truth)
    for segment in segments:  # the pipeline's masks, put back together into one label map
        assert segment["mask"].size == image.size
        predicted[np.asarray(segment["mask"]) > 0] = LABELS.index(segment["label"])
    counted = truth != IGNORE
    assert (predicted == truth)[counted].mean() >= 0.8


def test_lora_adapts_the_encoder_trains_the_decode_head_and_exports_merged(tiny_segformer, scenes, tmp_path, capsys):
    from transformers import SegformerForSemanticSegmentation

    out = tmp_path / "out"
    main("semantic_segmentation", _args(tiny_segformer, scenes, out, "--use_peft", "--max_train_steps", "4",
                                        "--eval_strategy", "end"))
    assert "trainable of" in capsys.readouterr().out
    assert_merged_lora_export(tiny_segformer, out / "run" / "best", SegformerForSemanticSegmentation, "segformer.",
                              "decode_head.")
    assert pipeline("image-segmentation", model=str(out / "run" / "best"))(str(scenes / "validation" / "images" / "000.png"))


def test_reduce_labels_drops_class_zero_and_shifts_the_rest(scenes, tiny_segformer):
    table = value_table(LabelSet(["other", "a", "b"], None), reduce_labels=True)
    assert table[:3].tolist() == [IGNORE, 0, 1] and table[3] == -1 and table[255] == IGNORE
    table = value_table(LabelSet(["sky", "road"], 11), reduce_labels=False)  # CamVid style ignore index
    assert table[:2].tolist() == [0, 1] and table[11] == IGNORE and table[2] == -1 and table[255] == -1
    task_class = get_task("semantic_segmentation")
    cfg = parse_config(task_class.config_class, _args(tiny_segformer, scenes, "unused", "--reduce_labels"))
    task = task_class(cfg)
    data = task.load_data()
    assert data.labels == LABELS[1:]  # the background is no class any more
    mask = task.preprocess(task.build_processor(data), data["validation"], "validation", data)[0]["labels"]
    raw = np.asarray(Image.open(scenes / "validation" / "masks" / "000.png"))
    assert torch.equal(mask, torch.from_numpy(np.where((raw == 0) | (raw == 255), IGNORE, raw.astype(np.int64) - 1)))


def test_joint_augmentation_keeps_image_and_mask_aligned(tiny_segformer):
    from transformers import AutoImageProcessor

    spec = image_spec(AutoImageProcessor.from_pretrained(tiny_segformer))
    # an image whose red channel spells out its own mask (class k painted as red value 60 * k), in random
    # 4x4 blocks: a mask that missed a flip or a crop offset agrees with about a quarter of the pixels
    grid = torch.randint(0, 4, (8, 8), generator=torch.Generator().manual_seed(0))
    ids = grid.repeat_interleave(4, 0).repeat_interleave(4, 1)
    image = Image.fromarray(np.stack([(ids * 60).numpy().astype(np.uint8)] * 3, axis=-1))
    transform = train_transform(spec, (0.75, 1.5), hflip=True)
    torch.manual_seed(0)
    for _ in range(8):
        pixels, mask = transform(image, ids.clone())
        assert pixels.shape == (3, 32, 32) and mask.shape == (32, 32) and pixels.dtype == torch.uint8
        assert set(mask.unique().tolist()) <= {0, 1, 2, 3, IGNORE}  # nearest neighbour: no blended ids
        inside = mask != IGNORE  # padding of a zoomed-out crop
        # bilinear image resampling blurs edges; most pixels must still agree with their mask id
        agree = (pixels[0][inside].float() / 60).round() == mask[inside].float()
        assert agree.float().mean() > 0.7


def test_logits_are_upsampled_to_each_masks_own_size():
    masks = [torch.zeros(4, 6, dtype=torch.long), torch.ones(8, 4, dtype=torch.long)]
    labels = pad_masks(masks, IGNORE)
    assert labels.shape == (2, 8, 6) and labels[0, 5, 0] == IGNORE and labels[1, 0, 5] == IGNORE
    logits = torch.randn(2, 3, 2, 2)
    out = upsample(logits, labels, torch.tensor([[4, 6], [8, 4]]))
    assert out.shape == (2, 3, 8, 6)
    expected = torch.nn.functional.interpolate(logits[1:], size=(8, 4), mode="bilinear", align_corners=False)
    assert torch.allclose(out[1, :, :8, :4], expected[0])


def _copy(scenes, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(scenes, root)
    return root


@pytest.mark.parametrize("damage, message", [
    ("no_mask", r"images/003\.png: image without a mask \(expected .*masks/003\.png\)"),
    ("mask_size", r"masks/003\.png: mask is 16x32 but its image .*images/003\.png is 32x32"),
    ("mask_value", r"masks/003\.png: mask values \[7\] are outside the label set \(allowed: 0-3, ignore \[255\]\)"),
    ("unreadable", r"images/003\.png: unreadable image"),
    ("rgb_mask", r"masks/003\.png: mask has mode RGB; expected a single-channel index PNG"),
])
def test_bad_input_names_the_file_and_the_reason(scenes, tiny_segformer, tmp_path, damage, message):
    root = _copy(scenes, tmp_path)
    image, mask = root / "train" / "images" / "003.png", root / "train" / "masks" / "003.png"
    if damage == "no_mask":
        mask.unlink()
    elif damage == "mask_size":
        Image.new("L", (16, 32)).save(mask)
    elif damage == "mask_value":
        array = np.asarray(Image.open(mask)).copy()
        array[0, 0] = 7
        Image.fromarray(array).save(mask)
    elif damage == "unreadable":
        image.write_bytes(image.read_bytes()[:60])
    else:
        Image.open(mask).convert("RGB").save(mask)
    task_class = get_task("semantic_segmentation")
    task = task_class(parse_config(task_class.config_class, _args(tiny_segformer, root, tmp_path / "out")))
    with pytest.raises(DataError, match=message):
        task.load_data()


def test_packaged_mobilenetv2_upernet_gets_the_imagenet_weights():
    import timm

    from shared.toolkit.models import load_timm_backbone_state_dict

    task_class = get_task("semantic_segmentation")
    task = task_class(parse_config(task_class.config_class, ["--image_height", "64", "--image_width", "96"]))
    model = task.build_model(["a", "b", "c"])
    reference = timm.create_model("mobilenetv2_100", pretrained=False)
    reference.load_state_dict(load_timm_backbone_state_dict("mobilenetv2"))
    backbone = model.backbone._backbone.state_dict()
    assert torch.equal(backbone["conv_stem.weight"], reference.state_dict()["conv_stem.weight"])
    assert model.config.hidden_size == 128 and not model.config.use_auxiliary_head
    logits = model.eval()(pixel_values=torch.randn(1, 3, 64, 96)).logits
    assert logits.shape == (1, 3, 64, 96)
    assert task.build_processor(None).size == {"height": 64, "width": 96}
    heads = task_class(parse_config(task_class.config_class, ["--backbone_learning_rate", "1e-5"])).lr_overrides(model)
    assert heads[""] == 1e-5 and all(name.startswith("decode_head.") for name in heads if name)


def test_tiny_mask2former_trains_on_semantic_masks_and_round_trips(scenes, tmp_path):
    from transformers import (Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor,
                              SwinConfig)

    base = tmp_path / "tiny_mask2former"
    swin = SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                      window_size=2, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=swin, hidden_dim=32, mask_feature_size=32, feature_size=32,
                               encoder_layers=1, decoder_layers=2, num_attention_heads=2, encoder_feedforward_dim=64,
                               dim_feedforward=64, num_queries=8, num_labels=2, common_stride=4)
    Mask2FormerForUniversalSegmentation(config).save_pretrained(base)
    # 64x64 inputs: at 32x32 the last stage is 1x1, and one image alone then trips the pixel decoder's GroupNorm
    Mask2FormerImageProcessor(size={"height": 64, "width": 64}, do_pad=False).save_pretrained(base)
    out = tmp_path / "out"
    results = main("semantic_segmentation", _args(base, scenes, out, "--max_train_steps", "6", "--channels_last",
                                                  "false", "--lr_scheduler_type", "linear", "--image_height", "64",
                                                  "--image_width", "64"))
    losses = [json.loads(line)["train/loss"] for line in (out / "run" / "metrics.jsonl").read_text().splitlines()
              if "train/loss" in line]
    assert np.isfinite(losses).all() and 0.0 <= results["eval_mean_iou"] <= 1.0
    segments = pipeline("image-segmentation", model=str(out / "run" / "best"))(
        str(scenes / "validation" / "images" / "000.png"), subtask="semantic")
    assert segments and {s["label"] for s in segments} <= set(LABELS)


def test_masks_follow_the_photos_exif_rotation():
    import io

    from shared.inputs.vision import to_rgb
    from tasks.semantic_segmentation.transforms import orient_like_image

    stored = Image.new("RGB", (4, 2))
    stored.paste((255, 0, 0), (0, 0, 1, 1))  # a red top-left pixel, class 1 in the mask
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    stored.save(buffer, "PNG", exif=exif.tobytes())
    photo = Image.open(io.BytesIO(buffer.getvalue()))
    mask = np.zeros((2, 4), dtype=np.uint8)
    mask[0, 0] = 1
    shown, turned = np.asarray(to_rgb(photo)), orient_like_image(photo, mask)
    assert turned.shape == shown.shape[:2] == (4, 2)
    assert turned[0, 1] == 1 and shown[0, 1, 0] > 200  # the red pixel and its class moved together
