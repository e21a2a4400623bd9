"""Demo fixtures: tiny trained models laid out as outputs/, and the apps serving them on loopback.

The models are trained once per session; each app server lives for one test module and is stopped after it
(an idle Gradio server polls at about 10% of a core, which would slow every unrelated test after it)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.apps.server import ROOT, free_port, serve  # noqa: F401  (re-exported for the test modules)
from tests.helpers import tiny_text_args, toy_reviews, write_csv

POSITIVE_TEXT = "the lamp is wonderful and book"
NEGATIVE_TEXT = "the desk is awful and shoe"
IMAGE_CLASSES = ["circle", "square", "stripes"]  # colour-coded (sample_data.CLASS_COLOURS): red, green, blue


def _train_text(tiny_bert_dir: Path, data: Path, outputs: Path) -> None:
    """text_classification/run/best: a 2-layer BERT that learned the toy reviews (labels neg/pos)."""
    from shared.toolkit.cli import main

    train = write_csv(data / "train.csv", toy_reviews(96, 1))
    validation = write_csv(data / "validation.csv", toy_reviews(30, 2))
    results = main("text_classification", tiny_text_args(tiny_bert_dir, train, validation,
                                                         outputs / "text_classification"))
    assert results["eval_accuracy"] >= 0.9


def _train_image(tiny_bert_dir: Path, data: Path, outputs: Path) -> None:  # noqa: ARG001 (uniform signature)
    """image_classification/run/best: a 2-layer ViT on 32x32 colour-coded shapes (IMAGE_CLASSES)."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    from shared.toolkit.cli import main
    from tasks.image_classification.sample_data import write_image_folder

    shapes = write_image_folder(data / "shapes", {"train": 16, "validation": 8}, size=32, classes=IMAGE_CLASSES,
                                colour_coded=True)
    model = data / "tiny_vit"
    ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=64)).save_pretrained(model)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(model)
    results = main("image_classification", [
        "--model_name_or_path", str(model), "--train_dir", str(shapes / "train"), "--validation_dir",
        str(shapes / "validation"), "--output_dir", str(outputs / "image_classification"), "--run_name", "run",
        "--num_train_epochs", "3", "--learning_rate", "3e-3", "--per_device_train_batch_size", "8",
        "--crop_scale_min", "0.6", "--mixed_precision", "no", "--eval_strategy", "steps", "--eval_steps", "3",
        "--save_strategy", "no", "--seed", "0", "--cpu_threads", "1"])
    assert results["eval_accuracy"] >= 0.9


# One entry per task whose app the tests serve: each trains a tiny model into outputs/<task>/run/best.
# Each is called as trainer(tiny_bert_dir, data_dir, outputs_dir).
TRAINERS = {"text_classification": _train_text, "image_classification": _train_image}


@pytest.fixture(scope="session")
def models_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    """An outputs/ folder as training leaves it: <task>/run/best for every task in TRAINERS, each a tiny
    model that learned its toy data in a few seconds."""
    from accelerate.state import AcceleratorState, GradientState

    outputs = tmp_path_factory.mktemp("outputs")
    for name, train in TRAINERS.items():
        train(tiny_bert_dir, tmp_path_factory.mktemp(f"data_{name}"), outputs)
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    return outputs


@pytest.fixture(scope="module")
def text_app(models_dir, tmp_path_factory) -> Iterator[str]:
    """apps/text_classification.py serving the newest text model under models_dir."""
    log = tmp_path_factory.mktemp("logs") / "text_app.log"
    with serve(["apps/text_classification.py", "--models_dir", str(models_dir)], log) as url:
        yield url


@pytest.fixture(scope="module")
def image_app(models_dir, tmp_path_factory) -> Iterator[str]:
    """apps/image_classification.py serving the newest image model under models_dir."""
    log = tmp_path_factory.mktemp("logs") / "image_app.log"
    with serve(["apps/image_classification.py", "--models_dir", str(models_dir)], log) as url:
        yield url


@pytest.fixture(scope="module")
def launcher_app(models_dir, tmp_path_factory) -> Iterator[str]:
    """`python -m apps` serving every trained model under models_dir."""
    log = tmp_path_factory.mktemp("logs") / "launcher.log"
    with serve(["-m", "apps", "--models_dir", str(models_dir)], log) as url:
        yield url


def tiny_qa_model(tiny_bert_dir: Path, out: Path) -> Path:
    """A random-init 2-layer BERT span head with the toy WordPiece tokenizer: arbitrary answers, real spans."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    BertForQuestionAnswering(BertConfig.from_pretrained(tiny_bert_dir)).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(out)
    return out


def tiny_translation_model(tiny_bert_dir: Path, out: Path) -> Path:
    """A random-init 1+1-layer Marian model sharing the toy WordPiece vocabulary."""
    import torch
    from transformers import AutoTokenizer, MarianConfig, MarianMTModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    config = MarianConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                          decoder_ffn_dim=32, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                          eos_token_id=tokenizer.sep_token_id, decoder_start_token_id=tokenizer.pad_token_id,
                          forced_eos_token_id=tokenizer.sep_token_id)
    torch.manual_seed(0)
    model = MarianMTModel(config)
    model.generation_config.max_length = 12
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_dense_detector(out: Path, labels: list[str]) -> Path:
    """An untrained tiny dense detector: its scores are arbitrary, but boxes, labels and thresholds are real."""
    import torch
    from transformers import ConditionalDetrImageProcessor

    from tasks.object_detection.modeling_dense_detector import DenseDetectorConfig, DenseDetectorForObjectDetection

    config = DenseDetectorConfig(backbone="test_convnext", out_indices=[1, 2, 3], neck_channels=32, head_convs=1,
                                 num_labels=len(labels), id2label=dict(enumerate(labels)))
    torch.manual_seed(0)
    DenseDetectorForObjectDetection(config).save_pretrained(out)
    ConditionalDetrImageProcessor(size={"height": 64, "width": 64}, do_pad=False).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def qa_app(tiny_bert_dir, tmp_path_factory) -> Iterator[str]:
    """apps/question_answering.py serving an untrained tiny QA model."""
    model = tiny_qa_model(tiny_bert_dir, tmp_path_factory.mktemp("tiny_qa_app"))
    with serve(["apps/question_answering.py", "--model", str(model)],
               tmp_path_factory.mktemp("logs") / "qa.log") as url:
        yield url


@pytest.fixture(scope="module")
def translation_app(tiny_bert_dir, tmp_path_factory) -> Iterator[str]:
    """apps/translation.py serving an untrained tiny Marian model."""
    model = tiny_translation_model(tiny_bert_dir, tmp_path_factory.mktemp("tiny_mt_app"))
    with serve(["apps/translation.py", "--model", str(model)],
               tmp_path_factory.mktemp("logs") / "mt.log") as url:
        yield url
