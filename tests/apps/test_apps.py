"""The real app scripts on loopback, driven with gradio_client: labels, friendly errors, the launcher, load."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image
from gradio_client.exceptions import AppError

from shared.serving.demo import main, serve_all, train_command
from shared.task import get_task, list_tasks
from tests.apps.conftest import IMAGE_CLASSES, NEGATIVE_TEXT, POSITIVE_TEXT, TRAINERS
from tests.helpers import toy_reviews

pytestmark = pytest.mark.slow


def _client(url: str) -> Client:
    return Client(url, verbose=False, download_files=False)


def test_text_app_returns_the_trained_label_names(text_app):
    client = _client(text_app)
    assert client.predict(POSITIVE_TEXT, api_name="/predict")["label"] == "pos"
    result = client.predict(NEGATIVE_TEXT, api_name="/predict")
    assert result["label"] == "neg"
    assert {c["label"] for c in result["confidences"]} == {"neg", "pos"}
    assert abs(sum(c["confidence"] for c in result["confidences"]) - 1) < 1e-4


@pytest.mark.parametrize("text", ["", "   \n "])
def test_empty_text_gets_the_friendly_error(text_app, text):
    with pytest.raises(AppError, match=r"^Please enter some text in 'Text' first\.$"):
        _client(text_app).predict(text, api_name="/predict")


def test_over_long_text_is_cut_and_still_classified(text_app):
    # 6,000 characters: past the spec's max_chars and far past the tiny model's 64 positions.
    assert _client(text_app).predict(POSITIVE_TEXT + " lovely" * 800, api_name="/predict")["label"] == "pos"


def test_text_app_shows_the_model_card_and_examples(text_app, models_dir):
    config = _client(text_app).config
    markdown = " ".join(str(c.get("props", {}).get("value", "")) for c in config["components"]
                        if c.get("type") == "markdown")
    assert str(models_dir / "text_classification" / "run" / "best") in markdown
    assert "- **labels**: neg, pos" in markdown and "| accuracy |" in markdown
    assert any(c.get("type") == "dataset" for c in config["components"])  # gr.Examples


def test_fifty_concurrent_requests_all_succeed(text_app):
    client = _client(text_app)
    texts = [POSITIVE_TEXT if i % 2 == 0 else NEGATIVE_TEXT for i in range(50)]
    with ThreadPoolExecutor(50) as pool:
        labels = list(pool.map(lambda text: client.predict(text, api_name="/predict")["label"], texts))
    assert labels == ["pos" if i % 2 == 0 else "neg" for i in range(50)]


def test_launcher_serves_a_tab_per_trained_task(launcher_app, models_dir):
    client = _client(launcher_app)
    tabs = [c["props"]["label"] for c in client.config["components"] if c.get("type") == "tabitem"]
    assert tabs == ["Image classification", "Text classification"]  # list_tasks() order
    assert client.predict(POSITIVE_TEXT, api_name="/text_classification")["label"] == "pos"
    image = _shape_image(models_dir, "square")
    assert client.predict(handle_file(str(image)), api_name="/image_classification")["label"] == "square"
    notes = next(c["props"]["value"] for c in client.config["components"] if c["props"].get("elem_id") == "notes")
    untrained = [name for name in list_tasks() if name not in TRAINERS and get_task(name).demo()]
    for name in untrained:  # tasks with a demo but no model are listed with the command that trains one
        assert train_command(name) in notes


def _refusal(capsys, entry, *args) -> str:
    """An entry point's refusal: exit 2 and one `error: ...` line on stderr (the shared refusal path)."""
    with pytest.raises(SystemExit) as exit_info:
        entry(*args)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "error: " in message and "Traceback" not in message
    return message


def test_app_without_a_model_says_how_to_train_one(tmp_path, capsys):
    message = _refusal(capsys, main, "text_classification", ["--models_dir", str(tmp_path)])
    assert f"no trained text_classification model under {tmp_path / 'text_classification'}/" in message
    assert "accelerate launch tasks/text_classification/train.py" in message


@pytest.mark.parametrize("model, expected", [
    ("{tmp}/outputs/text_classification/run/best", "no such model folder"),
    ("{tmp}", "not a saved model (no config.json)"),
])
def test_bad_model_folder_is_refused_in_plain_words(tmp_path, capsys, model, expected):
    assert expected in _refusal(capsys, main, "text_classification", ["--model", model.format(tmp=tmp_path)])


def test_launcher_without_any_model_lists_the_train_commands(tmp_path, capsys):
    message = _refusal(capsys, serve_all, ["--models_dir", str(tmp_path)])
    assert "accelerate launch tasks/text_classification/train.py" in message


# ------------------------------------------------------------------ image classification
def _shape_image(models_dir, name: str):
    """A validation image of the tiny image model's toy data (32x32, colour-coded shape)."""
    return next((models_dir.parent).glob(f"data_image_classification*/shapes/validation/{name}/000.png"))


def test_image_app_returns_top_labels_for_each_class(image_app, models_dir):
    client = _client(image_app)
    for name in IMAGE_CLASSES:
        result = client.predict(handle_file(str(_shape_image(models_dir, name))), api_name="/predict")
        assert result["label"] == name
        assert {c["label"] for c in result["confidences"]} == set(IMAGE_CLASSES)  # top 5 capped at 3 labels
        assert abs(sum(c["confidence"] for c in result["confidences"]) - 1) < 1e-4


def test_image_app_refuses_a_non_image_upload(image_app, tmp_path):
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 not really an image")
    with pytest.raises(AppError, match=r"^'report.pdf' is not an image this demo can read; please upload a PNG"):
        _client(image_app).predict(handle_file(str(tmp_path / "report.pdf")), api_name="/predict")
    with pytest.raises(AppError, match=r"^Please upload an image in 'Image' first\.$"):
        _client(image_app).predict(None, api_name="/predict")


def test_image_app_scales_a_huge_image_down_and_classifies_it(image_app, models_dir, tmp_path):
    huge = tmp_path / "huge.png"  # 6000x4500: 27 megapixels, scaled to 2048 a side before the pipeline
    Image.open(_shape_image(models_dir, "stripes")).resize((6000, 4500), Image.NEAREST).save(huge)
    assert _client(image_app).predict(handle_file(str(huge)), api_name="/predict")["label"] == "stripes"


def test_image_app_offers_the_models_validation_images(image_app, models_dir):
    """The run's config.yaml names its --validation_dir: one image per class in turn."""
    config = _client(image_app).config
    dataset = next(c for c in config["components"] if c.get("type") == "dataset")
    validation = _shape_image(models_dir, "circle").parents[1]
    assert dataset["props"]["label"] == f"Examples from the validation data: {validation}"
    samples = [Path(sample["path"]).read_bytes() for sample, in dataset["props"]["samples"]]
    expected = [f"{name}/00{i}.png" for i in (0, 1) for name in IMAGE_CLASSES]
    assert samples == [(validation / name).read_bytes() for name in expected]


def test_text_app_offers_the_models_validation_texts(text_app, models_dir):
    config = _client(text_app).config
    dataset = next(c for c in config["components"] if c.get("type") == "dataset")
    validation = next(models_dir.parent.glob("data_text_classification*/validation.csv"))
    assert dataset["props"]["label"] == f"Examples from the validation data: {validation}"
    assert [text for text, in dataset["props"]["samples"]] == [text for text, _ in toy_reviews(30, 2)[:6]]


@pytest.mark.parametrize("app, names", [("text_app", ["text"]), ("image_app", ["image"])])
def test_the_api_names_the_inputs(app, names, request):
    info = _client(request.getfixturevalue(app)).view_api(print_info=False, return_format="dict")
    assert [p["parameter_name"] for p in info["named_endpoints"]["/predict"]["parameters"]] == names
