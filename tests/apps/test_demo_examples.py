"""Demo examples from a model's own validation data (embedded ones without it), named API inputs, and the
translucent segmentation overlay; in-process, on run folders laid out as training leaves them (no training)."""
from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from shared.serving.demo import Panel, build_app
from shared.serving.examples import demo_examples, evenly, spread, validation_source
from shared.task import get_task, list_tasks
from shared.toolkit.config import parse_config, save_config

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
REVIEWS = [("a lovely lamp", "pos"), ("the lamp broke", "neg"), ("works well", "pos"), ("too loud", "neg")]
SENTENCES = [[("Ada", "B-PER"), ("lives", "O"), ("in", "O"), ("Paris", "B-LOC")],
             [("Bo", "B-PER"), ("Li", "I-PER"), ("left", "O")], [("New", "B-LOC"), ("York", "I-LOC")],
             [("hello", "O")]]
QA = [("The lamp is on the desk.", "Where is the lamp?", "on the desk"),
      ("The lamp is on the desk.", "What is on the desk?", "The lamp"),
      ("Bo reads in the garden.", "Where does Bo read?", "in the garden")]
PAIRS = [("the lamp is red", "die Lampe ist rot"), ("a dog runs", "ein Hund rennt"), ("hello", "hallo"),
         ("good night", "gute Nacht")]


# ------------------------------------------------------------------ one small validation set per task
def _text_classification(root: Path):
    from transformers import BertConfig

    from tests.helpers import write_csv

    files = [write_csv(root / f"{split}.csv", REVIEWS) for split in ("train", "validation")]
    config = BertConfig(vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                        intermediate_size=8, id2label={0: "neg", 1: "pos"})
    expected = [[REVIEWS[0][0]], [REVIEWS[1][0]], [REVIEWS[2][0]]]  # one per label first, then in order
    return config, ["--train_file", str(files[0]), "--validation_file", str(files[1])], expected


def _token_classification(root: Path):
    from transformers import BertConfig

    from tasks.token_classification.sample_data import write_conll

    files = [write_conll(root / f"{split}.conll", SENTENCES) for split in ("train", "validation")]
    config = BertConfig(vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                        intermediate_size=8, id2label=dict(enumerate(TAGS)))
    expected = [["Ada lives in Paris"], ["Bo Li left"], ["New York"]]
    return config, ["--train_file", str(files[0]), "--validation_file", str(files[1])], expected


def _question_answering(root: Path):
    from transformers import BertConfig

    squad = {"data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": [{"id": str(i), "question": question,
                                      "answers": [{"text": answer, "answer_start": context.index(answer)}]}]}
        for i, (context, question, answer) in enumerate(QA)]}]}
    files = [root / f"{split}.json" for split in ("train", "validation")]
    for file in files:
        file.write_text(json.dumps(squad))
    config = BertConfig(vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    expected = [[QA[0][0], QA[0][1]], [QA[2][0], QA[2][1]], [QA[1][0], QA[1][1]]]  # one per context first
    return config, ["--train_file", str(files[0]), "--validation_file", str(files[1])], expected


def _translation(root: Path):
    from transformers import MarianConfig

    files = [root / f"{split}.jsonl" for split in ("train", "validation")]
    for file in files:
        file.write_text("".join(json.dumps({"translation": {"en": en, "de": de}}) + "\n" for en, de in PAIRS))
    config = MarianConfig(vocab_size=64, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=1,
                          decoder_attention_heads=1, encoder_ffn_dim=8, decoder_ffn_dim=8)
    expected = [[en, 3] for en, _ in PAIRS[:3]]  # the run's beam width
    return config, ["--train_file", str(files[0]), "--validation_file", str(files[1]), "--source_lang", "en",
                    "--target_lang", "de", "--num_beams", "3"], expected


def _image_classification(root: Path):
    from transformers import ViTConfig

    from tasks.image_classification.sample_data import write_image_folder

    classes = ["circle", "square", "stripes"]
    shapes = write_image_folder(root / "shapes", {"train": 2, "validation": 2}, size=16, classes=classes)
    config = ViTConfig(image_size=16, patch_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                       intermediate_size=8, id2label=dict(enumerate(classes)))
    expected = [[str((shapes / "validation" / name / "000.png").resolve())] for name in classes]  # one per class
    return config, ["--train_dir", str(shapes / "train"), "--validation_dir", str(shapes / "validation")], expected


def _object_detection(root: Path):
    from tasks.object_detection.modeling_dense_detector import DenseDetectorConfig
    from tasks.object_detection.sample_data import CLASSES, write_dataset

    coco = write_dataset(root / "coco", {"train": 2, "validation": 4}, size=32)
    config = DenseDetectorConfig(backbone="test_convnext", out_indices=[1, 2, 3], neck_channels=8, head_convs=1,
                                 num_labels=len(CLASSES), id2label=dict(enumerate(CLASSES)))
    expected = [[str((coco / "validation" / f"{i:04d}.png").resolve()), 0.3] for i in range(3)]
    return config, ["--train_dir", str(coco / "train"), "--validation_dir", str(coco / "validation")], expected


def _semantic_segmentation(root: Path):
    from transformers import SegformerConfig

    from tasks.semantic_segmentation.sample_data import LABELS, write_dataset

    scenes = write_dataset(root / "scenes", {"train": 2, "validation": 4}, size=32)
    config = SegformerConfig(num_encoder_blocks=1, depths=[1], sr_ratios=[1], hidden_sizes=[8], patch_sizes=[3],
                             strides=[2], num_attention_heads=[1], mlp_ratios=[1], decoder_hidden_size=8,
                             num_labels=len(LABELS), id2label=dict(enumerate(LABELS)))
    expected = [[str((scenes / "validation" / "images" / f"{i:03d}.png").resolve())] for i in range(3)]
    return config, ["--train_dir", str(scenes / "train"), "--validation_dir", str(scenes / "validation")], expected


DATA = {"text_classification": _text_classification, "token_classification": _token_classification,
        "question_answering": _question_answering, "translation": _translation,
        "image_classification": _image_classification, "object_detection": _object_detection,
        "semantic_segmentation": _semantic_segmentation}
API_NAMES = {"text_classification": ["text"], "token_classification": ["text"],
             "question_answering": ["context", "question"], "translation": ["source_text", "beams"],
             "image_classification": ["image"], "object_detection": ["image", "score_threshold"],
             "semantic_segmentation": ["image"]}


def _run(name: str, root: Path) -> tuple[Path, list]:
    """<root>/run/best (a saved model's config) and <root>/run/config.yaml naming the task's validation data."""
    root.mkdir(parents=True, exist_ok=True)
    config, flags, expected = DATA[name](root)
    best = root / "run" / "best"
    config.save_pretrained(best)
    cfg = parse_config(get_task(name).config_class, ["--model_name_or_path", str(best), "--output_dir",
                                                     str(root), *flags])
    save_config(cfg, root / "run" / "config.yaml")
    return best, expected


def _hook(name: str):
    """The spec's examples_from, or the task's demo module's for specs built in task.py (QA, translation)."""
    return getattr(get_task(name).demo(), "examples_from", None) or importlib.import_module(
        f"tasks.{name}.demo").examples_from


def test_every_task_is_covered():
    assert sorted(DATA) == sorted(API_NAMES) == list_tasks() and len(DATA) == 7


@pytest.mark.parametrize("name", sorted(DATA))
def test_examples_come_from_the_runs_validation_data(name, tmp_path):
    best, expected = _run(name, tmp_path)
    source = validation_source(get_task(name), str(best))
    assert source is not None and Path(source.where).name in ("validation", "validation.csv", "validation.conll",
                                                              "validation.json", "validation.jsonl")
    examples = [list(example) for example in _hook(name)(source, 3)]
    assert examples == expected
    assert len(examples[0]) == len(get_task(name).demo().inputs())


@pytest.mark.parametrize("name", ["text_classification", "image_classification", "object_detection",
                                  "semantic_segmentation", "token_classification"])
def test_the_demo_page_offers_them_and_falls_back_without_the_data(name, tmp_path):
    task = get_task(name)
    spec = task.demo()
    best, expected = _run(name, tmp_path / "here")
    examples, label = demo_examples(task, spec, str(best), 3)
    assert examples == expected and label.startswith("Examples from the validation data: ")
    app = build_app([Panel(name, name, spec, None, "card", examples, label)], name)
    dataset = next(c for c in app.config["components"] if c["type"] == "dataset")
    assert len(dataset["props"]["samples"]) == 3 and dataset["props"]["label"] == label

    moved = tmp_path / "moved"  # the run copied elsewhere, its data left behind: the embedded examples
    shutil.copytree(tmp_path / "here" / "run", moved / "run")
    shutil.rmtree(tmp_path / "here")
    assert validation_source(task, str(moved / "run" / "best")) is None
    assert demo_examples(task, spec, str(moved / "run" / "best"), 3) == (spec.examples, "Examples")
    (moved / "run" / "config.yaml").unlink()  # a model folder outside any run
    assert demo_examples(task, spec, str(moved / "run" / "best"), 3) == (spec.examples, "Examples")
    assert demo_examples(task, spec, "someone/some-model", 3) == (spec.examples, "Examples")  # a hub id


def test_a_validation_split_carved_from_train_is_read_by_the_task(tmp_path):
    """No validation file: load_data re-carves the run's seeded split, so the examples are rows it held out."""
    from transformers import BertConfig

    from tests.helpers import toy_reviews, write_csv

    rows = toy_reviews(40, 3)
    train = write_csv(tmp_path / "train.csv", rows)
    best = tmp_path / "run" / "best"
    BertConfig(vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8,
               id2label={0: "neg", 1: "pos"}).save_pretrained(best)
    cfg = parse_config(get_task("text_classification").config_class, [
        "--model_name_or_path", str(best), "--train_file", str(train), "--validation_split", "0.25",
        "--output_dir", str(tmp_path)])
    save_config(cfg, tmp_path / "run" / "config.yaml")
    task = get_task("text_classification")
    source = validation_source(task, str(best))
    assert len(source.rows) == 10 and source.where == f"the part of {train} held out for validation"
    examples, label = demo_examples(task, task.demo(), str(best), 4)
    assert len(examples) == 4 and {text for text, in examples} <= {text for text, _ in rows}
    assert set(examples[0] + examples[1]) <= set(source.rows["text"])


def test_rows_are_taken_in_turn_from_each_class_or_spread_over_the_split():
    assert spread(["a", "a", "a", "b", "c", "b"], 5) == [0, 3, 4, 1, 5]
    assert spread([[0, 1], [1], [0, 1]], 3) == [0, 1, 2]  # multi-label rows: one turn per label set
    assert evenly(100, 4) == [0, 25, 50, 75] and evenly(3, 6) == [0, 1, 2]


@pytest.mark.parametrize("name", sorted(API_NAMES))
def test_the_api_names_its_inputs(name):
    spec = get_task(name).demo()
    app = build_app([Panel(name, name, spec, None, "card")], name)
    parameters = app.get_api_info()["named_endpoints"]["/predict"]["parameters"]
    assert [p["parameter_name"] for p in parameters] == API_NAMES[name]


def test_the_segmentation_mask_is_translucent_over_the_photo():
    """Each pixel of the page's overlay mixes the photo with the class colour: neither hides the other."""
    from tasks.semantic_segmentation.demo import _present

    photo = Image.new("RGB", (8, 6), (20, 200, 40))
    mask = Image.fromarray(np.pad(np.full((6, 4), 255, np.uint8), ((0, 0), (0, 4))))
    value, shares = _present([{"mask": mask, "label": "road"}], photo)
    assert shares == {"road": 0.5}
    drawn = gr.AnnotatedImage().postprocess(value)
    layer = np.asarray(Image.open(drawn.annotations[0].image.path).convert("RGBA"), dtype=np.float32)
    base = np.asarray(Image.open(drawn.image.path).convert("RGB"), dtype=np.float32)
    alpha = layer[..., 3:] / 255
    shown = base * (1 - alpha) + layer[..., :3] * alpha  # what the browser composes (before its own opacity)
    assert (alpha[:, 4:] == 0).all() and (shown[:, 4:] == base[:, 4:]).all()  # no class: the photo as it is
    colour, pixel = layer[0, 0, :3], shown[0, 0]
    assert 0.3 < alpha[0, 0, 0] < 0.8  # translucent
    assert np.abs(pixel - colour).max() > 30 and np.abs(pixel - base[0, 0]).max() > 30  # both show
