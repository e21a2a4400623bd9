"""The segmentation app on loopback, driven with gradio_client: a coloured overlay with its legend, shares, bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from shared.task import get_task
from tests.apps.server import serve

pytestmark = pytest.mark.slow
LABELS = ["background", "circle", "square", "triangle"]


@pytest.fixture(scope="module")
def segmentation_model(tmp_path_factory):
    """A tiny SegFormer trained for 40 steps on colour-coded scenes, saved as outputs/<task>/run/best."""
    from accelerate.state import AcceleratorState, GradientState
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    from shared.toolkit.cli import main
    from tasks.semantic_segmentation.sample_data import write_dataset

    base, data = tmp_path_factory.mktemp("tiny_segformer"), tmp_path_factory.mktemp("scenes")
    config = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
                             patch_sizes=[3, 3], strides=[2, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                             decoder_hidden_size=32)
    SegformerForSemanticSegmentation(config).save_pretrained(base)
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(base)
    write_dataset(data, {"train": 48, "validation": 8}, size=32, colour_coded=True)
    outputs = tmp_path_factory.mktemp("outputs")
    main("semantic_segmentation", [
        "--model_name_or_path", str(base), "--train_dir", str(data / "train"), "--validation_dir",
        str(data / "validation"), "--output_dir", str(outputs / "semantic_segmentation"), "--run_name", "run",
        "--max_train_steps", "40", "--learning_rate", "5e-3", "--lr_scheduler_type", "constant",
        "--per_device_train_batch_size", "8", "--scale_min", "1", "--scale_max", "1", "--mixed_precision", "no",
        "--save_strategy", "no", "--eval_strategy", "no", "--cpu_threads", "1", "--seed", "0"])
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return outputs / "semantic_segmentation" / "run" / "best", data


@pytest.fixture(scope="module")
def segmentation_app(segmentation_model, tmp_path_factory):
    log = tmp_path_factory.mktemp("logs") / "segmentation_app.log"
    with serve(["apps/semantic_segmentation.py", "--model", str(segmentation_model[0])], log) as url:
        yield url


def _client(url: str) -> Client:
    return Client(url, verbose=False, download_files=False)


def test_the_task_ships_its_demo_spec():
    spec = get_task("semantic_segmentation").demo()
    assert spec.pipeline_tag == "image-segmentation" and spec.predict_batch is not None
    assert spec.examples and all(Image.open(path).size == (256, 256) for path, in spec.examples)


def test_app_draws_the_mask_with_a_legend_and_class_shares(segmentation_app, segmentation_model):
    image = segmentation_model[1] / "validation" / "images" / "000.png"
    overlay, shares = _client(segmentation_app).predict(handle_file(str(image)), api_name="/predict")
    labels = [annotation["label"] for annotation in overlay["annotations"]]
    assert labels and set(labels) <= set(LABELS) and "background" in labels  # the legend's entries
    assert overlay["image"]["path"]  # the photo under the masks
    shown = {c["label"]: c["confidence"] for c in shares["confidences"]}
    assert set(shown) == set(labels) and sum(shown.values()) == pytest.approx(1.0, abs=1e-3)
    truth = np.asarray(Image.open(segmentation_model[1] / "validation" / "masks" / "000.png"))
    assert shown["background"] == pytest.approx((truth == 0).mean(), abs=0.15)


def test_the_mask_is_translucent_over_the_photo(segmentation_app, segmentation_model):
    """Where a class is drawn, the page shows the photo through its colour (mask alpha below 1)."""
    image = segmentation_model[1] / "validation" / "images" / "000.png"
    overlay, _ = _client(segmentation_app).predict(handle_file(str(image)), api_name="/predict")
    base = np.asarray(Image.open(overlay["image"]["path"]).convert("RGB"), dtype=np.float32)
    for annotation in overlay["annotations"]:
        layer = np.asarray(Image.open(annotation["image"]["path"]).convert("RGBA"), dtype=np.float32)
        drawn = layer[..., 3] > 0
        assert drawn.any() and np.allclose(layer[..., 3][drawn], 255 * 0.55, atol=1)
        alpha = layer[..., 3:] / 255
        shown = (base * (1 - alpha) + layer[..., :3] * alpha)[drawn]
        assert np.abs(shown - layer[..., :3][drawn]).max() > 10  # not the pure class colour: the photo shows


def test_app_offers_the_models_validation_images_with_named_inputs(segmentation_app, segmentation_model):
    client = _client(segmentation_app)
    dataset = next(c for c in client.config["components"] if c.get("type") == "dataset")
    validation = segmentation_model[1] / "validation"
    assert dataset["props"]["label"] == f"Examples from the validation data: {validation}"
    samples = [Path(sample["path"]).read_bytes() for sample, in dataset["props"]["samples"]]
    assert samples == [(validation / "images" / f"{i:03d}.png").read_bytes() for i in (0, 1, 2, 4, 5, 6)]  # spread
    info = client.view_api(print_info=False, return_format="dict")
    assert [p["parameter_name"] for p in info["named_endpoints"]["/predict"]["parameters"]] == ["image"]


def test_a_non_image_upload_gets_a_friendly_message(segmentation_app, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(AppError, match="is not an image this demo can read"):
        _client(segmentation_app).predict(handle_file(str(text)), api_name="/predict")


def test_app_shows_the_model_card(segmentation_app, segmentation_model):
    config = _client(segmentation_app).config
    markdown = " ".join(str(c.get("props", {}).get("value", "")) for c in config["components"]
                        if c.get("type") == "markdown")
    assert str(segmentation_model[0]) in markdown
    assert "- **labels**: background, circle, square, triangle" in markdown
