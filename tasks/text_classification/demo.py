"""Gradio demo spec of a text classifier: a sentence in, label scores out (a score for regression models)."""
from __future__ import annotations

import gradio as gr

from shared.serving.demo import token_limit
from shared.serving.examples import ValidationSource, spread
from shared.task import DemoSpec

EXAMPLES = [  # product and film reviews, none of them from the sample data; shown without validation data
    ["The blender is loud, but it crushes ice in seconds. Love it."],
    ["Stopped working after two days. A complete waste of money."],
    ["It does the job. Nothing special, nothing bad."],
    ["One of the warmest, funniest films of the year."],
]


def examples_from(source: ValidationSource, n: int) -> list[list[str]]:
    """Validation texts taken in turn from each label, one per label first (a pair model's first text only: the
    demo takes one)."""
    rows = source.rows
    labels = rows["label"] if "label" in rows.column_names else [0] * len(rows)
    texts = rows[source.cfg.text_column]
    return [[texts[i]] for i in spread(labels, n)]


def predict_batch(pipe, rows: list[tuple]) -> list:
    """One gr.Label value per row: {label: probability}, or the predicted value as text for regression."""
    texts = [text for text, in rows]
    options = {"truncation": True, "max_length": token_limit(pipe), "batch_size": len(texts)}
    if pipe.model.config.problem_type == "regression":
        return [f"{result['score']:.4f}" for result in pipe(texts, function_to_apply="none", **options)]
    return [{r["label"]: r["score"] for r in result} for result in pipe(texts, top_k=None, **options)]


def demo_spec() -> DemoSpec:
    return DemoSpec(
        pipeline_tag="text-classification",
        inputs=lambda: [gr.Textbox(label="Text", lines=3, placeholder="Type or paste a sentence, then press Run")],
        outputs=lambda: [gr.Label(label="Label scores", num_top_classes=5)],
        predict=lambda pipe, text: predict_batch(pipe, [(text,)])[0],
        predict_batch=predict_batch,
        examples=EXAMPLES,
        examples_from=examples_from,
        title="Text classification",
        description="Scores for every label the model was trained on. Text past the model's length limit "
                    "(512 tokens for MiniLM) is not read.",
        max_chars=5000,
    )
