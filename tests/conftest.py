"""Shared fixtures: offline settings, a tiny random-init BERT with its own tokenizer, tiny learnable data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _pin_xdist_worker() -> None:
    """Under pytest-xdist (`python -m pytest -n 2 --dist loadfile`) each worker keeps to its own share of the cores.
    Trainings size their torch threads from the cores they may use (shared.toolkit.runtime.set_cpu_threads),
    and so do the subprocesses a test launches (they inherit the affinity): two workers each spinning two
    OpenMP threads on two cores would slow both far more than they gain."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cores, index = sorted(os.sched_getaffinity(0)), int(worker.removeprefix("gw"))
    share = [core for i, core in enumerate(cores) if i % count == index % count] or cores
    os.sched_setaffinity(0, share)
    torch.set_num_threads(len(share))


_pin_xdist_worker()

import tasks  # noqa: E402,F401  (registers every task)

from tests.helpers import toy_reviews, write_csv  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece vocabulary of the toy words, their letters and letter pieces.

    Built in sorted order, not by tokenizers' WordPiece trainer: the trainer breaks ties in another order in
    every process, so token ids (and with them the tiny model's results) changed from run to run.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    out = tmp_path_factory.mktemp("tiny_bert")
    corpus = [text for text, _ in toy_reviews(400, seed=0)] + ["the a is and of to in question answer context"]
    normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = sorted({word for text in corpus for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text))})
    letters = sorted({c for word in words for c in word})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + letters + [f"##{c}" for c in letters] + [w for w in words if w not in letters]
    tokenizer = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = splitter
    tokenizer.save(str(out / "tokenizer.json"))
    fast = BertTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))
    fast.save_pretrained(out)
    config = BertConfig(vocab_size=fast.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)  # the same weights whichever tests ran first and consumed the global RNG
    BertForSequenceClassification(config).save_pretrained(out)
    return out


@pytest.fixture()
def toy_text_files(tmp_path) -> tuple[Path, Path]:
    train = write_csv(tmp_path / "train.csv", toy_reviews(96, seed=1))
    validation = write_csv(tmp_path / "validation.csv", toy_reviews(30, seed=2))
    return train, validation


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """Each in-process run builds its own Accelerator; accelerate keeps a process-wide singleton."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
