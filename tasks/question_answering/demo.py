"""Examples of the question-answering demo (its spec is Task.demo() in task.py): the model's own validation rows."""
from __future__ import annotations

from shared.serving.examples import ValidationSource, spread


def examples_from(source: ValidationSource, n: int) -> list[list[str]]:
    """(context, question) of validation rows, one per context first (SQuAD asks many questions of each)."""
    rows = source.rows
    contexts, questions = rows["context"], rows["question"]
    return [[contexts[i], questions[i]] for i in spread(contexts, n)]
