"""The apps in a real headless Chromium: type, click, read what the page shows, and keep a screenshot."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from PIL import Image

from tests.apps.conftest import IMAGE_CLASSES, NEGATIVE_TEXT, POSITIVE_TEXT, tiny_dense_detector
from tests.apps.server import ROOT, serve
from tests.helpers import toy_reviews

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium: install it with `apt-get install chromium chromium-driver` "
                "(.ci/system-packages does this in CI)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is in the [test] extra")

pytestmark = pytest.mark.slow
# Chromium's own background traffic (updates, sync, field trials) switched off: the page is all it loads.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage"]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}  # urlparse drops the brackets of [::1]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A fresh headless Chromium page; any request leaving the machine is blocked and recorded."""
    outside = []

    def guard(route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("http://", "https://", "ws://", "wss://")) and host not in LOOPBACK:
            outside.append(route.request.url)
            return route.abort()
        return route.continue_()

    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=ARGS, viewport={"width": 1280, "height": 900})
        context.route("**/*", guard)
        page = context.new_page()
        # a bound, not a timing: under `pytest -n 2` the page, its server and chromium share one core
        page.set_default_timeout(60_000)
        yield page
        context.close()
    assert not outside, f"the page tried to reach outside the machine: {outside}"


def _open(page, url: str) -> None:
    """Load an app and wait for Gradio to render it: on a busy core its first render alone can pass 30 s."""
    page.goto(url)
    sync_api.expect(page.locator(".gradio-container").first).to_be_visible(timeout=120_000)


def _screenshot(page, tmp_path, name: str) -> Path:
    """Into the test's tmp dir; FINETUNE_UPDATE_SCREENSHOTS=1 also refreshes docs/screenshots/ for the README."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("FINETUNE_UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs" / "screenshots").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, ROOT / "docs" / "screenshots" / path.name)
    return path


def _classify(page, run_id: str, text: str) -> str:
    page.locator("textarea").first.fill(text)
    page.locator(f"#{run_id}").click()
    label = page.get_by_test_id("label-output-value")
    sync_api.expect(label).to_have_text("pos" if text == POSITIVE_TEXT else "neg")
    return label.inner_text()


def _expect_notice(page, text: str) -> None:
    """A gradio toast holding `text`, once it has faded in (so the screenshot shows it)."""
    sync_api.expect(page.locator(".toast-body").filter(has_text=text)).to_have_css("opacity", "1")


def test_text_app_in_the_browser(page, text_app, models_dir, tmp_path):
    _open(page, text_app)
    sync_api.expect(page.get_by_text("Label scores").first).to_be_visible()
    assert str(models_dir / "text_classification" / "run" / "best") in page.locator("#card-predict").inner_text()
    assert _classify(page, "run-predict", NEGATIVE_TEXT) == "neg"
    assert _classify(page, "run-predict", POSITIVE_TEXT) == "pos"
    _screenshot(page, tmp_path, "text_classification")

    page.locator("textarea").first.fill("   ")
    page.locator("#run-predict").click()
    _expect_notice(page, "Please enter some text in 'Text' first.")
    _screenshot(page, tmp_path, "text_classification_empty")

    page.locator("textarea").first.fill(POSITIVE_TEXT + " lovely" * 800)
    page.locator("#run-predict").click()
    _expect_notice(page, "'Text' is 5,630 characters long; only the first 5,000 are used.")
    sync_api.expect(page.get_by_test_id("label-output-value")).to_have_text("pos")


def test_example_sentences_fill_the_input(page, text_app):
    """The examples are the model's validation texts (the run's --validation_file)."""
    _open(page, text_app)
    sentence = toy_reviews(30, 2)[1][0]
    page.get_by_text(sentence, exact=True).first.click()
    sync_api.expect(page.locator("textarea").first).to_have_value(sentence)


def test_launcher_in_the_browser(page, launcher_app, tmp_path):
    _open(page, launcher_app)
    page.get_by_role("tab", name="Text classification").click()
    assert _classify(page, "run-text_classification", POSITIVE_TEXT) == "pos"
    _screenshot(page, tmp_path, "launcher")


def _upload_and_run(page, image) -> None:
    page.locator("#run-predict").wait_for()
    page.locator("input[type=file]").first.set_input_files(str(image))
    page.locator("#run-predict").click()


def test_image_app_in_the_browser(page, image_app, models_dir, tmp_path):
    _open(page, image_app)
    sync_api.expect(page.get_by_text("Top 5 labels").first).to_be_visible()
    assert str(models_dir / "image_classification" / "run" / "best") in page.locator("#card-predict").inner_text()
    shapes = next(models_dir.parent.glob("data_image_classification*/shapes/validation"))
    for name in IMAGE_CLASSES:
        page.locator("#clear-predict").click()
        _upload_and_run(page, shapes / name / "000.png")
        sync_api.expect(page.get_by_test_id("label-output-value")).to_have_text(name)
    _screenshot(page, tmp_path, "image_classification")

    # A .txt is refused by the page itself (the upload accepts image/*); a file named like an image that is
    # not one gets past the page and is refused by the app's own check.
    page.locator("#clear-predict").click()
    (tmp_path / "notes.txt").write_text("not an image")
    _upload_and_run(page, tmp_path / "notes.txt")
    _expect_notice(page, "Invalid file type: notes.txt. Only image/* allowed.")
    page.locator("#clear-predict").click()
    (tmp_path / "holiday.jpg").write_text("not a jpeg either")
    _upload_and_run(page, tmp_path / "holiday.jpg")
    _expect_notice(page, "'holiday.jpg' is not an image this demo can read; please upload a PNG, JPEG")
    _screenshot(page, tmp_path, "image_classification_not_an_image")

    page.locator("#clear-predict").click()
    Image.open(shapes / "circle" / "000.png").resize((6000, 4500), Image.NEAREST).save(tmp_path / "huge.png")
    _upload_and_run(page, tmp_path / "huge.png")
    _expect_notice(page, "The image is 6000x4500 pixels; it was scaled down to 2048x1536.")
    sync_api.expect(page.get_by_test_id("label-output-value")).to_have_text("circle")


def test_image_examples_fill_the_input(page, image_app):
    _open(page, image_app)
    page.locator(".gallery-item, [data-testid=\"dataset\"] button, table button").first.click()
    sync_api.expect(page.locator("[data-testid=\"image\"] img").first).to_be_visible()
    page.locator("#run-predict").click()
    sync_api.expect(page.get_by_test_id("label-output-value")).not_to_be_empty()


@pytest.fixture(scope="module")
def detection_app(tmp_path_factory):
    """apps/object_detection.py serving an untrained tiny dense detector: its boxes are arbitrary but real."""
    out = tiny_dense_detector(tmp_path_factory.mktemp("browser_detector"), IMAGE_CLASSES)
    with serve(["apps/object_detection.py", "--model", str(out)], tmp_path_factory.mktemp("logs") / "det.log") as url:
        yield url


def test_detection_app_in_the_browser(page, detection_app, tmp_path):
    _open(page, detection_app)
    sync_api.expect(page.get_by_text("Score threshold").first).to_be_visible()
    photo = tmp_path / "street.png"
    Image.new("RGB", (160, 120), (90, 140, 200)).save(photo)
    threshold = page.locator("input[type=number]").first
    threshold.fill("0")
    threshold.press("Enter")
    _upload_and_run(page, photo)
    sync_api.expect(page.get_by_role("link", name="Download")).to_be_visible()  # the image with boxes drawn
    sync_api.expect(page.get_by_text("xmin").first).to_be_visible()  # the box list, in pixels
    assert any(name in page.content() for name in IMAGE_CLASSES)
    _screenshot(page, tmp_path, "object_detection")

    threshold.fill("1")  # above every score: the page shows the image with no box listed
    threshold.press("Enter")
    page.locator("#run-predict").click()
    sync_api.expect(page.get_by_text("xmin")).to_have_count(0)


@pytest.fixture(scope="module")
def segmentation_app(tmp_path_factory):
    """apps/semantic_segmentation.py serving an untrained tiny SegFormer: arbitrary classes, a real overlay."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    out = tmp_path_factory.mktemp("browser_segformer")
    labels = ["background", *IMAGE_CLASSES]
    config = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
                             patch_sizes=[3, 3], strides=[2, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                             decoder_hidden_size=32, num_labels=len(labels), id2label=dict(enumerate(labels)))
    torch.manual_seed(0)
    SegformerForSemanticSegmentation(config).save_pretrained(out)
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
    with serve(["apps/semantic_segmentation.py", "--model", str(out)],
               tmp_path_factory.mktemp("logs") / "seg.log") as url:
        yield url


def test_segmentation_app_in_the_browser(page, segmentation_app, tmp_path):
    _open(page, segmentation_app)
    photo = tmp_path / "scene.png"
    Image.new("RGB", (96, 64), (120, 160, 90)).save(photo)
    _upload_and_run(page, photo)
    shares = page.get_by_test_id("label-output-value")  # the class covering most of the image
    sync_api.expect(shares).not_to_be_empty()
    assert shares.inner_text() in ["background", *IMAGE_CLASSES]
    sync_api.expect(page.locator(".legend-item, .legend button, .legend").first).to_be_visible()  # overlay legend
    _screenshot(page, tmp_path, "semantic_segmentation")


def test_qa_app_in_the_browser(page, qa_app, tmp_path):
    _open(page, qa_app)
    page.locator("textarea").nth(0).fill("The lamp is on the desk. The book is on the shelf.")
    page.locator("textarea").nth(1).fill("Where is the lamp?")
    page.locator("#run-predict").click()
    sync_api.expect(page.get_by_text("Answer in the context").first).to_be_visible()
    sync_api.expect(page.get_by_text("answer", exact=True).first).to_be_visible()  # the span's mark in the context
    sync_api.expect(page.get_by_role("textbox", name="Answer", exact=True)).not_to_have_value("")
    _screenshot(page, tmp_path, "question_answering")


def test_translation_app_in_the_browser(page, translation_app, tmp_path):
    _open(page, translation_app)
    sync_api.expect(page.get_by_text("Beams").first).to_be_visible()
    page.locator("textarea").first.fill("the lamp is on the desk")
    beams = page.locator("input[type=number]").first
    beams.fill("2")
    beams.press("Enter")
    page.locator("#run-predict").click()
    sync_api.expect(page.get_by_role("textbox", name="Translation")).not_to_have_value("")
    _screenshot(page, tmp_path, "translation")
