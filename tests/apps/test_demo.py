"""shared/serving/demo.py in-process: model resolution, model card, input checks, micro-batching, image uploads, tabs."""
from __future__ import annotations

import json
import os
import threading
import time

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from shared.serving.demo import (DemoError, MicroBatcher, Panel, _check_text, build_app, launch, load_pipeline, model_card,
                         newest_model, resolve_model)
from shared.task import DemoSpec, get_task, list_tasks
from tests.apps.server import free_port

DEMO_TASKS = [name for name in list_tasks() if get_task(name).demo() is not None]


def test_demo_tasks_are_found():
    assert "text_classification" in DEMO_TASKS and len(DEMO_TASKS) == sum(
        get_task(name).demo() is not None for name in list_tasks())


@pytest.mark.parametrize("name", DEMO_TASKS)
def test_every_demo_spec_builds_a_page(name):
    """Each task's spec, without a model: components build, examples fit the inputs, a "predict" endpoint."""
    spec = get_task(name).demo()
    assert spec.inputs() and spec.outputs() and callable(spec.predict)
    assert all(len(example) == len(spec.inputs()) for example in spec.examples)
    app = build_app([Panel(name, name, spec, None, "card")], name)
    assert "predict" in [d.get("api_name") for d in app.config["dependencies"]]


def _fake_model(folder, mtime: float):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"id2label": {"0": "neg", "1": "pos"}}))
    os.utime(folder / "config.json", (mtime, mtime))
    return folder


def test_newest_best_folder_is_chosen(tmp_path):
    _fake_model(tmp_path / "text_classification" / "20260101-000000" / "best", 1_000)
    newer = _fake_model(tmp_path / "text_classification" / "zz-older-name" / "best", 2_000)
    _fake_model(tmp_path / "text_classification" / "run3" / "last", 3_000)  # last/ is never picked by default
    assert newest_model(tmp_path / "text_classification") == newer
    assert resolve_model("text_classification", None, tmp_path) == str(newer)


def test_hub_ids_pass_through_and_fail_offline_in_one_line():
    assert resolve_model("text_classification", "someone/some-model", "outputs") == "someone/some-model"
    with pytest.raises(DemoError, match=r"could not load 'someone/some-model' as a text-classification pipeline"):
        load_pipeline("text-classification", "someone/some-model")


def test_model_card_shows_data_date_labels_and_metrics(tmp_path):
    folder = _fake_model(tmp_path / "best", time.time())
    (folder / "README.md").write_text("---\npipeline_tag: text-classification\nbase_model: minilm\n---\n# t\n\n"
                                      "- Data: reviews.csv\n- Trained: 2026-01-02 03:04 UTC, 40 optimizer steps\n")
    (folder / "eval_results.json").write_text(json.dumps({"accuracy": 0.91234, "num_samples": 150.0,
                                                          "per_class": [0.9, 0.8]}))
    card = model_card(str(folder))
    for row in ["- **base model**: minilm", "- **data**: reviews.csv", "- **trained**: 2026-01-02 03:04 UTC, 40 "
                "optimizer steps", "- **labels**: neg, pos", "| accuracy | 0.9123 |", "| num_samples | 150 |"]:
        assert row in card
    assert "per_class" not in card
    assert "Hub model `a/b`" in model_card("a/b")


def test_over_long_text_is_cut_with_a_notice():
    with pytest.warns(UserWarning, match=r"'Text' is 12,000 characters long; only the first 10,000 are used"):
        assert len(_check_text("x" * 12_000, "Text", 10_000)) == 10_000
    with pytest.raises(gr.Error, match="Please enter some text in 'Text' first"):
        _check_text(" \n", "Text", 10)


def test_micro_batcher_merges_concurrent_requests_and_isolates_a_bad_row():
    sizes = []

    def double(rows):
        sizes.append(len(rows))
        time.sleep(0.05)  # a slow model call: requests arriving meanwhile wait for the next batch
        if any(row == ("bad",) for row in rows):
            raise ValueError("bad row")
        return [row[0] * 2 for row in rows]

    batcher, results = MicroBatcher(double, max_batch_size=8), {}

    def call(i, value):
        try:
            results[i] = batcher((value,))
        except ValueError as err:
            results[i] = err

    threads = [threading.Thread(target=call, args=(i, "bad" if i == 5 else f"r{i}")) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert isinstance(results.pop(5), ValueError)
    assert results == {i: f"r{i}r{i}" for i in range(20) if i != 5}
    assert max(sizes) > 1 and max(sizes) <= 8


def _image_spec(predict=None) -> DemoSpec:
    return DemoSpec(pipeline_tag="image-classification", inputs=lambda: [gr.Image(label="Photo")],
                    outputs=lambda: [gr.Textbox(label="Size")], max_image_side=256,
                    predict=predict or (lambda pipe, image: f"{image.mode} {image.size[0]}x{image.size[1]}"))


@pytest.fixture()
def serve_panels():
    apps = []

    def start(panels, tabs=False) -> Client:
        app = launch(build_app(panels, "test", tabs=tabs), port=free_port(), block=False)
        apps.append(app)
        return Client(app.local_url, verbose=False, download_files=False)

    yield start
    for app in apps:
        app.close()


def test_image_uploads_are_checked_decoded_and_resized(serve_panels, tmp_path):
    client = serve_panels([Panel("images", "Images", _image_spec(), None, "card")])
    Image.new("RGBA", (32, 16), "red").save(tmp_path / "small.png")
    Image.new("RGB", (1000, 300), "blue").save(tmp_path / "big.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    assert client.predict(handle_file(str(tmp_path / "small.png")), api_name="/predict") == "RGB 32x16"
    assert client.predict(handle_file(str(tmp_path / "big.jpg")), api_name="/predict") == "RGB 256x77"
    with pytest.raises(AppError, match=r"'notes.txt' is not an image this demo can read"):
        client.predict(handle_file(str(tmp_path / "notes.txt")), api_name="/predict")
    with pytest.raises(AppError, match=r"Please upload an image in 'Photo' first"):
        client.predict(None, api_name="/predict")


def test_a_failing_model_gives_one_plain_line(serve_panels, tmp_path):
    def broken(pipe, image):
        raise RuntimeError("shape mismatch\n  a long internal trace")

    client = serve_panels([Panel("images", "Images", _image_spec(broken), None, "card")])
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(AppError) as error:
        client.predict(handle_file(str(tmp_path / "a.png")), api_name="/predict")
    assert str(error.value) == ("The model could not process this input (RuntimeError: shape mismatch). "
                                "The server log has the details.")


def test_panels_become_tabs_with_one_endpoint_each(serve_panels, tmp_path):
    text = DemoSpec(pipeline_tag="text-classification", inputs=lambda: [gr.Textbox(label="Text")],
                    outputs=lambda: [gr.Textbox()], predict=lambda pipe, text: text.upper(),
                    predict_batch=lambda pipe, rows: [row[0].upper() for row in rows])
    client = serve_panels([Panel("texts", "Texts", text, None, "card a"),
                           Panel("images", "Images", _image_spec(), None, "card b")], tabs=True)
    assert [c["props"]["label"] for c in client.config["components"] if c["type"] == "tabitem"] == ["Texts", "Images"]
    assert client.predict("hi", api_name="/texts") == "HI"
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    assert client.predict(handle_file(str(tmp_path / "a.png")), api_name="/images") == "RGB 4x4"
