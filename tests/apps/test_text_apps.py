"""The question-answering and translation apps on loopback, driven through gradio_client.

The models are untrained tiny ones: their answers are arbitrary, but where an answer comes from (a span
of the context), how it is shown (highlighted in place) and which controls reach the pipeline are real.
"""
from __future__ import annotations

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError


pytestmark = pytest.mark.slow
CONTEXT = "The lamp is on the desk. The book is on the shelf near the window."


def _text_of(highlighted) -> tuple[str, list[str]]:
    """The page's highlighted text as (the whole text, the spans marked 'answer')."""
    pieces = highlighted if isinstance(highlighted, list) else highlighted.get("value", highlighted)
    tokens = [(p["token"], p.get("class_or_confidence")) if isinstance(p, dict) else (p[0], p[1]) for p in pieces]
    return "".join(t for t, _ in tokens), [t for t, label in tokens if label == "answer"]


def test_qa_app_highlights_the_answer_span_in_the_context(qa_app):
    client = Client(qa_app, verbose=False)
    highlighted, answer, score = client.predict(CONTEXT, "Where is the lamp?", api_name="/predict")
    whole, marked = _text_of(highlighted)
    assert whole == CONTEXT and marked == [answer] and answer and answer in CONTEXT
    assert 0.0 <= score <= 1.0


def test_qa_app_refuses_an_empty_question(qa_app):
    with pytest.raises(AppError, match="Please enter some text in 'Question' first"):
        Client(qa_app, verbose=False).predict(CONTEXT, "   ", api_name="/predict")


def test_translation_predict_hands_the_beam_count_to_generation():
    from shared.task import get_task

    calls = []
    fake_pipe = lambda text, **kwargs: calls.append((text, kwargs)) or [{"translation_text": "hello"}]
    assert get_task("translation").demo().predict(fake_pipe, "hallo", 3.0) == "hello"
    assert calls == [("hallo", {"num_beams": 3})]


def test_translation_app_translates_with_any_beam_count(translation_app):
    client = Client(translation_app, verbose=False)
    greedy = client.predict("the lamp is on the desk", 1, api_name="/predict")
    beams = client.predict("the lamp is on the desk", 4, api_name="/predict")
    assert isinstance(greedy, str) and isinstance(beams, str)
    with pytest.raises(AppError, match="Please enter some text in 'Source text' first"):
        client.predict("", 4, api_name="/predict")
