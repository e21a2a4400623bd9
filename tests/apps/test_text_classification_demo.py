"""The text-classification demo spec on untrained tiny models: label scores, regression values, long texts."""
from __future__ import annotations

import pytest
from transformers import AutoTokenizer, BertForSequenceClassification, pipeline

from shared.task import get_task
from tasks.text_classification.demo import predict_batch


def _pipe(model_dir, **config):
    model = BertForSequenceClassification.from_pretrained(model_dir, ignore_mismatched_sizes=True, **config)
    return pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(model_dir))


def test_the_task_ships_its_demo_spec():
    spec = get_task("text_classification").demo()
    assert spec.pipeline_tag == "text-classification" and spec.predict_batch is not None
    assert spec.examples and all(len(example) == len(spec.inputs()) for example in spec.examples)


def test_every_label_gets_a_probability_even_past_the_position_limit(tiny_bert_dir):
    pipe = _pipe(tiny_bert_dir, num_labels=3, id2label={0: "bad", 1: "meh", 2: "good"})
    long_text = "the lamp is wonderful " * 100  # 400 words; the tiny model has 64 positions
    short, long = predict_batch(pipe, [("the lamp is fine",), (long_text,)])
    for scores in short, long:
        assert set(scores) == {"bad", "meh", "good"}
        assert sum(scores.values()) == pytest.approx(1, abs=1e-4)


def test_regression_models_show_the_raw_value(tiny_bert_dir):
    pipe = _pipe(tiny_bert_dir, num_labels=1, problem_type="regression")
    [value] = predict_batch(pipe, [("the lamp is fine",)])
    raw = pipe.model(**pipe.tokenizer("the lamp is fine", return_tensors="pt")).logits.item()
    assert float(value) == pytest.approx(raw, abs=1e-3)  # not squashed through a sigmoid
