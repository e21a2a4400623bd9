"""Demo fixtures: a tiny trained text classifier laid out as outputs/, and the apps serving it on loopback."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.apps.server import ROOT, free_port, serve  # noqa: F401  (re-exported for the test modules)
from tests.helpers import tiny_text_args, toy_reviews, write_csv

POSITIVE_TEXT = "the lamp is wonderful and book"
NEGATIVE_TEXT = "the desk is awful and shoe"


@pytest.fixture(scope="session")
def models_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    """An outputs/ folder as training leaves it: text_classification/run/best, a 2-layer BERT that learned
    the toy reviews (labels neg/pos) in a few seconds."""
    from accelerate.state import AcceleratorState, GradientState

    from shared.cli import main

    data, outputs = tmp_path_factory.mktemp("toy_text"), tmp_path_factory.mktemp("outputs")
    train = write_csv(data / "train.csv", toy_reviews(96, 1))
    validation = write_csv(data / "validation.csv", toy_reviews(30, 2))
    results = main("text_classification", tiny_text_args(tiny_bert_dir, train, validation,
                                                         outputs / "text_classification"))
    assert results["eval_accuracy"] >= 0.9
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return outputs


@pytest.fixture(scope="session")
def text_app(models_dir, tmp_path_factory) -> Iterator[str]:
    """apps/text_classification.py serving the newest text model under models_dir."""
    log = tmp_path_factory.mktemp("logs") / "text_app.log"
    with serve(["apps/text_classification.py", "--models_dir", str(models_dir)], log) as url:
        yield url


@pytest.fixture(scope="session")
def launcher_app(models_dir, tmp_path_factory) -> Iterator[str]:
    """`python -m apps` serving every trained model under models_dir."""
    log = tmp_path_factory.mktemp("logs") / "launcher.log"
    with serve(["-m", "apps", "--models_dir", str(models_dir)], log) as url:
        yield url
