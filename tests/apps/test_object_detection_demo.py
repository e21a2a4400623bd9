"""The object-detection demo: spec in-process, and apps/object_detection.py on loopback through gradio_client."""
from __future__ import annotations

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from transformers import pipeline

from shared.task import get_task
from tasks.object_detection.demo import predict_batch
from tests.apps.conftest import tiny_dense_detector
from tests.apps.server import serve

LABELS = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory):
    """An untrained tiny dense detector: its scores are arbitrary, but boxes, labels and thresholds are real."""
    return tiny_dense_detector(tmp_path_factory.mktemp("demo_detector"), LABELS)


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (120, 80), (90, 140, 200)).save(path)
    return path


def test_the_task_ships_its_demo_spec():
    spec = get_task("object_detection").demo()
    assert spec.pipeline_tag == "object-detection" and spec.predict_batch is not None
    assert spec.examples and all(len(example) == len(spec.inputs()) for example in spec.examples)


def test_each_row_keeps_its_own_threshold(detector_dir, photo):
    pipe = pipeline("object-detection", model=str(detector_dir))
    image = Image.open(photo).convert("RGB")
    (drawn_all, everything), (drawn_none, nothing) = predict_batch(pipe, [(image, 0.0), (image, 1.01)])
    assert everything and nothing == []
    assert drawn_all.size == image.size and drawn_all.tobytes() != image.tobytes()  # boxes were drawn
    assert drawn_none.tobytes() == image.tobytes()
    assert [d["score"] for d in everything] == sorted((d["score"] for d in everything), reverse=True)
    for detection in everything:
        assert detection["label"] in LABELS
        box = detection["box"]
        assert 0 <= box["xmin"] <= box["xmax"] <= 120 and 0 <= box["ymin"] <= box["ymax"] <= 80


@pytest.mark.slow
def test_app_draws_boxes_and_applies_the_slider(detector_dir, photo, tmp_path):
    with serve(["apps/object_detection.py", "--model", str(detector_dir)], tmp_path / "app.log") as url:
        client = Client(url, verbose=False, download_files=False)
        image, boxes = client.predict(handle_file(str(photo)), 0.0, api_name="/predict")
        assert image["path"] and boxes and {b["label"] for b in boxes} <= set(LABELS)
        scores = sorted(b["score"] for b in boxes)
        middle = (scores[0] + scores[-1]) / 2  # the slider drops the boxes below it and keeps the rest
        _, fewer = client.predict(handle_file(str(photo)), middle, api_name="/predict")
        assert 1 <= len(fewer) < len(boxes) and all(b["score"] >= middle for b in fewer)
        not_an_image = tmp_path / "notes.txt"
        not_an_image.write_text("hello")
        with pytest.raises(AppError, match="is not an image this demo can read"):
            client.predict(handle_file(str(not_an_image)), 0.3, api_name="/predict")
