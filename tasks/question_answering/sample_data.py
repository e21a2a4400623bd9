"""The embedded sample: templated facts about made-up countries, with questions whose answers are spans.

Generated in code (no files) with a fixed seed, so `train.py` without data flags runs offline.
"""
from __future__ import annotations

import random

SYLLABLES = ["ka", "lo", "mir", "ta", "ven", "dor", "si", "ra", "bel", "no", "qui", "zan", "por", "e", "lu", "gar"]
# (fact template, question template, kind of answer)
RELATIONS = [
    ("The capital of {x} is {y}.", "What is the capital of {x}?", "city"),
    ("The longest river in {x} is the {y}.", "What is the longest river in {x}?", "river"),
    ("{x} was founded by {y}.", "Who founded {x}?", "person"),
    ("{x} became independent in {y}.", "When did {x} become independent?", "year"),
    ("The national animal of {x} is the {y}.", "What is the national animal of {x}?", "animal"),
]
ANIMALS = ["otter", "falcon", "lynx", "heron", "bison", "gecko", "walrus", "badger", "ibis", "marten"]


def _name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def _answer(rng: random.Random, kind: str) -> str:
    if kind == "year":
        return str(rng.randint(1200, 1999))
    if kind == "animal":
        return rng.choice(ANIMALS)
    if kind == "person":
        return f"{_name(rng, 2)} {_name(rng, 3)}"
    return _name(rng, rng.randint(2, 3))


def make_rows(n: int, seed: int, facts_per_context: int = 3) -> list[dict]:
    """`n` SQuAD-style rows: each context states a few facts about one country, the question asks one."""
    rng = random.Random(seed)
    rows = []
    while len(rows) < n:
        country = _name(rng, 3)
        relations = rng.sample(RELATIONS, facts_per_context)
        facts = [(fact, question, _answer(rng, kind)) for fact, question, kind in relations]
        context = " ".join(fact.format(x=country, y=answer) for fact, _, answer in facts)
        fact, question, answer = facts[rng.randrange(len(facts))]
        start = context.index(fact.format(x=country, y=answer)) + fact.format(x=country, y="\0").index("\0")
        rows.append({"id": f"sample-{seed}-{len(rows)}", "title": country, "context": context,
                     "question": question.format(x=country), "answers": {"text": [answer], "answer_start": [start]}})
    return rows
