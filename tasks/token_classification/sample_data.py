"""Generates the embedded sample dataset: short news-like sentences with PER, ORG and LOC entities (IOB2).

Run `python -m tasks.token_classification.sample_data` to rebuild the CoNLL files shipped beside this file.
Sentences are assembled from hand-written templates and name lists with a fixed seed, so the files are
reproducible; the validation names are partly unseen in training, so the model must read context too.
"""
from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).resolve().parent / "sample_data"
PEOPLE = ["Maria Lopez", "John Carter", "Aiko Tanaka", "Omar Haddad", "Lena Fischer", "Peter", "Sofia Rossi",
          "David Kim", "Grace Owusu", "Ivan Petrov", "Chen Wei", "Anna", "Lucas Martin", "Fatima Khan", "Tom Baker",
          "Priya Nair", "Jonas Berg", "Elena Costa", "Samuel Adeyemi", "Mei Lin", "Carlos Ruiz", "Hana Novak",
          "Noah Schmidt", "Amara Diallo", "Yusuf Demir", "Olivia Brown", "Kenta Mori", "Sara Ahmed", "Marco"]
ORGS = ["Acme Corp", "the United Nations", "Globex", "Red Cross", "Northwind Traders", "Initech", "the World Bank",
        "Umbrella Labs", "Stark Industries", "Blue Harbor Bank", "Oxfam", "Tesla", "the city council", "Contoso",
        "Apex Airlines", "Greenfield University", "the Health Ministry", "Vertex Media", "Silverline Rail",
        "Orion Energy", "the Football Association", "Maple Foods", "Helios Pharma", "Summit Insurance"]
PLACES = ["Paris", "New York", "Nairobi", "Tokyo", "Buenos Aires", "Berlin", "Lake Como", "Cairo", "Mumbai",
          "Toronto", "the Alps", "Sydney", "Rio de Janeiro", "Oslo", "Lima", "Hanoi", "Lagos", "Madrid",
          "San Francisco", "the Nile", "Krakow", "Seoul", "Cape Town", "Glasgow", "Quito", "Istanbul"]
TEMPLATES = [
    "{PER} joined {ORG} in {LOC} last year .",
    "{PER} said on {DAY} that {ORG} will open an office in {LOC} .",
    "Officials from {ORG} met {PER} in {LOC} on {DAY} .",
    "{PER} flew to {LOC} to speak for {ORG} .",
    "In {LOC} , {ORG} hired {PER} as its new director .",
    "{ORG} confirmed that {PER} left {LOC} {WHEN} .",
    "The report by {ORG} was praised by {PER} {WHEN} .",
    "{PER} grew up near {LOC} before moving to {LOC} .",
    "Heavy rain closed roads around {LOC} on {DAY} .",
    "{ORG} shares rose after the announcement {WHEN} .",
    "{PER} and {PER} visited {LOC} together .",
    "A spokesperson for {ORG} declined to comment on {DAY} .",
    "Fans in {LOC} cheered as {PER} won the final .",
    "{ORG} and {ORG} signed a deal in {LOC} {WHEN} .",
    "According to {PER} , prices in {LOC} doubled .",
    "{PER} , a lawyer for {ORG} , spoke to reporters .",
    "The new bridge links {LOC} with {LOC} .",
    "{PER} will lead {ORG} from {DAY} .",
    "Thousands marched through {LOC} {WHEN} .",
    "{ORG} sued {ORG} over a contract in {LOC} .",
    "Nobody from {ORG} attended the meeting {WHEN} .",
    "{PER} thanked {PER} for the help .",
]
WORDS = {"DAY": ["Monday", "Tuesday", "Friday", "Sunday"], "WHEN": ["yesterday", "today", "this week", "last month"]}
POOLS = {"PER": PEOPLE, "ORG": ORGS, "LOC": PLACES}


def sentence(rng: random.Random, pools: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(word, IOB2 tag) pairs of one sentence; the articles inside organisation names stay part of them."""
    rows = []
    for piece in rng.choice(TEMPLATES).split():
        kind = piece.strip("{}") if piece.startswith("{") else None
        if kind is None or kind in WORDS:  # days and times stay O: they are no entities here
            rows += [(word, "O") for word in (rng.choice(WORDS[kind]) if kind else piece).split()]
            continue
        words = rng.choice(pools[kind]).split()
        rows += [(word, f"{'B' if i == 0 else 'I'}-{kind}") for i, word in enumerate(words)]
    return rows


def make_sentences(n: int, seed: int, held_out: bool = False) -> list[list[tuple[str, str]]]:
    """`held_out` draws from the last third of each name list too (names training never showed)."""
    rng = random.Random(seed)
    pools = {k: v if held_out else v[: 2 * len(v) // 3] for k, v in POOLS.items()}
    return [sentence(rng, pools) for _ in range(n)]


def write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    path.write_text("".join("".join(f"{w}\t{t}\n" for w, t in s) + "\n" for s in sentences))
    return path


def main() -> None:
    HERE.mkdir(exist_ok=True)
    write_conll(HERE / "train.conll", make_sentences(600, seed=0))
    write_conll(HERE / "validation.conll", make_sentences(150, seed=1, held_out=True))
    print(f"wrote {HERE}/train.conll (600 sentences) and validation.conll (150 sentences)")


if __name__ == "__main__":
    main()
