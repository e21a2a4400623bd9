"""Gradio demo spec of an entity tagger: text in, the text with its entities highlighted and a table of them out."""
from __future__ import annotations

import gradio as gr

from shared.serving.demo import token_limit
from shared.serving.examples import ValidationSource
from shared.task import DemoSpec

EXAMPLES = [  # none of them from the sample data; shown without validation data
    ["Ada Lovelace worked with Charles Babbage in London."],
    ["Greenpeace protested outside the offices of Shell in The Hague on Friday."],
    ["Kenji Sato moved from Osaka to Vancouver to join Microsoft."],
]
COLUMNS = ["entity", "type", "score", "start", "end"]


def examples_from(source: ValidationSource, n: int) -> list[list[str]]:
    """The first validation sentences, their words joined by spaces."""
    return [[" ".join(tokens)] for tokens in source.rows.select(range(min(n, len(source.rows))))["tokens"]]


def predict_batch(pipe, rows: list[tuple]) -> list:
    """Per row: (HighlightedText value, table rows), from whole entities."""
    texts = [text for text, in rows]
    pipe.tokenizer.model_max_length = token_limit(pipe)  # the window size of the strided pass below
    # "first": a word's type is read from its first sub-token, the one trained by default (--label_all_tokens
    # models give the same words either way)
    results = pipe(texts, aggregation_strategy="first", stride=pipe.tokenizer.model_max_length // 4,
                   batch_size=len(texts))
    outputs = []
    for text, found in zip(texts, results):
        spans = [{"entity": e["entity_group"], "start": e["start"], "end": e["end"]} for e in found]
        table = [[text[e["start"]:e["end"]], e["entity_group"], round(float(e["score"]), 4), e["start"], e["end"]]
                 for e in found]
        outputs.append(({"text": text, "entities": spans}, table))
    return outputs


def demo_spec() -> DemoSpec:
    return DemoSpec(
        pipeline_tag="token-classification",
        inputs=lambda: [gr.Textbox(label="Text", lines=4, placeholder="Type or paste text, then press Run")],
        outputs=lambda: [gr.HighlightedText(label="Entities in the text", combine_adjacent=False),
                         gr.Dataframe(headers=COLUMNS, label="Entities", interactive=False)],
        predict=lambda pipe, text: predict_batch(pipe, [(text,)])[0],
        predict_batch=predict_batch,
        examples=EXAMPLES,
        examples_from=examples_from,
        title="Named entities",
        description="Whole entities with the type names the model was trained on, and the model's mean score "
                    "over each entity's sub-tokens. Text past the model's length limit is tagged in windows.",
        max_chars=5000,
    )
