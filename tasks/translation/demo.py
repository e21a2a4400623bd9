"""Examples of the translation demo (its spec is Task.demo() in task.py): the model's own validation sources."""
from __future__ import annotations

from shared.serving.examples import ValidationSource


def examples_from(source: ValidationSource, n: int) -> list[list]:
    """The first validation source sentences, each with the beam width the run evaluated with."""
    rows = source.rows.select(range(min(n, len(source.rows))))
    return [[text, min(source.cfg.num_beams, 8)] for text in rows["source"]]  # 8: the top of the beams slider
