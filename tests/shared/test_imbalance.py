"""Class imbalance: balanced weights and the weighted sampler raise macro F1 on a skewed set; focal loss maths;
the weighted sampler resumes exactly."""
from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from shared.toolkit.cli import main
from shared.training.losses import LossSettings, classification_loss
from shared.training.sampling import LengthGroupedBatchSampler, WeightedEpochSampler, balanced_row_weights
from tests.helpers import NEGATIVE, NOUNS, POSITIVE, tiny_text_args, write_csv


def skewed_reviews(n: int) -> list[tuple[str, str]]:
    """10% 'neg' rows, always with a negative word; a fifth of the 'pos' rows carry a negative word too.

    A negative word is then 'neg' only 36% of the time under the training prior, so a model fitted to
    that prior answers 'pos' for it and misses the minority class; reweighting the classes flips it.
    """
    rows = []
    for i in range(n):
        negative = i % 10 == 0 or i % 5 == 1
        word = (NEGATIVE if negative else POSITIVE)[i % 6]
        rows.append((f"the {NOUNS[i % 8]} is {word} and {NOUNS[(i // 8) % 8]}", "neg" if i % 10 == 0 else "pos"))
    return rows


@pytest.fixture()
def skewed_files(tmp_path):
    train = write_csv(tmp_path / "train.csv", skewed_reviews(240))
    validation = write_csv(tmp_path / "validation.csv", skewed_reviews(120))
    return train, validation


def _macro_f1(tiny_bert_dir, files, out, *extra) -> float:
    results = main("text_classification", tiny_text_args(tiny_bert_dir, *files, out, "--num_train_epochs", "6",
                                                          "--save_strategy", "no", "--data_report", "false", *extra))
    return results["last_eval_f1"]


@pytest.mark.slow
def test_balanced_weights_and_weighted_sampler_raise_macro_f1(tiny_bert_dir, skewed_files, tmp_path):
    plain = _macro_f1(tiny_bert_dir, skewed_files, tmp_path / "plain")
    balanced = _macro_f1(tiny_bert_dir, skewed_files, tmp_path / "balanced", "--class_weights", "balanced")
    sampled = _macro_f1(tiny_bert_dir, skewed_files, tmp_path / "sampled", "--weighted_sampler",
                        "--group_by_length", "false")
    print(f"macro F1: plain {plain:.3f}, balanced weights {balanced:.3f}, weighted sampler {sampled:.3f}")
    assert plain < 0.55, plain  # the minority class is never predicted
    assert balanced > plain + 0.1 and sampled > plain + 0.1, (plain, balanced, sampled)


@pytest.mark.slow
def test_weighted_length_grouped_sampler_resumes_bit_exact(tiny_bert_dir, skewed_files, tmp_path):
    extra = ["--weighted_sampler", "--save_strategy", "steps", "--save_steps", "5", "--save_total_limit", "10",
             "--num_train_epochs", "2", "--eval_strategy", "no", "--data_report", "false"]
    main("text_classification", tiny_text_args(tiny_bert_dir, *skewed_files, tmp_path / "a", *extra))
    resumed = tmp_path / "b" / "run" / "checkpoints"
    resumed.mkdir(parents=True)
    shutil.copytree(tmp_path / "a" / "run" / "checkpoints" / "step_00000020", resumed / "step_00000020")
    main("text_classification", tiny_text_args(tiny_bert_dir, *skewed_files, tmp_path / "b", *extra,
                                                "--resume_from_checkpoint", "latest"))
    a = load_file(str(tmp_path / "a" / "run" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "run" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_weighted_samplers_draw_classes_evenly_and_repeat_per_epoch():
    labels = [0] * 900 + [1] * 100
    weights = balanced_row_weights(labels, len(labels))
    sampler = WeightedEpochSampler(weights, seed=0)
    drawn = list(sampler)
    share = Counter(labels[i] for i in drawn)[1] / len(drawn)
    assert 0.4 < share < 0.6 and len(drawn) == 1000
    assert drawn == list(sampler)
    sampler.set_epoch(1)
    assert drawn != list(sampler)
    grouped = LengthGroupedBatchSampler(list(range(1000)), 10, seed=0, weights=weights)
    rows = [i for batch in grouped for i in batch]
    assert 0.4 < Counter(labels[i] for i in rows)[1] / len(rows) < 0.6


def test_weighted_sampler_refuses_rows_without_one_class():
    from shared.toolkit.config import ConfigError

    with pytest.raises(ConfigError, match="one class label per training row"):
        balanced_row_weights(None, 10)
    with pytest.raises(ConfigError, match="several features"):
        balanced_row_weights([0, 1], 3)


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5)])
def test_focal_loss_is_cross_entropy_at_gamma_zero_and_discounts_easy_examples(shape):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(*shape, generator=generator)
    labels = torch.randint(0, 3, (shape[0], *shape[2:]), generator=generator)
    labels.view(-1)[0] = -100
    weights = torch.tensor([0.5, 2.0, 1.0])
    expected = F.cross_entropy(logits, labels, weight=weights, ignore_index=-100)
    assert torch.allclose(classification_loss(logits, labels, LossSettings(weights, focal_gamma=0.0)), expected)
    assert torch.allclose(classification_loss(logits, labels, LossSettings(weights, focal_gamma=1e-9)), expected, atol=1e-6)
    focal = classification_loss(logits, labels, LossSettings(None, focal_gamma=2.0))
    assert focal < F.cross_entropy(logits, labels, ignore_index=-100)
    # An almost-certain correct prediction contributes almost nothing under focal loss.
    easy = torch.tensor([[20.0, 0.0, 0.0]])
    assert classification_loss(easy, torch.tensor([0]), LossSettings(None, focal_gamma=2.0)) < 1e-12


def test_focal_flag_reaches_the_task_loss(tiny_bert_dir, toy_text_files, tmp_path):
    args = ["--num_train_epochs", "1", "--eval_strategy", "no", "--logging_steps", "1", "--data_report", "false"]
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "ce", *args))
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "focal", *args,
                                                "--loss", "focal", "--focal_gamma", "2"))
    first = lambda out: json.loads((out / "run" / "metrics.jsonl").read_text().splitlines()[0])["train/loss"]
    # Same weights and batch at step 1: focal loss of near-chance predictions is about (1 - 0.5)^2 = 1/4 of CE.
    assert first(tmp_path / "focal") == pytest.approx(first(tmp_path / "ce") / 4, rel=0.2)
