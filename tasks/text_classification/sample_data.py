"""Generates the embedded sample dataset: short product reviews labelled negative / neutral / positive.

Run `python -m tasks.text_classification.sample_data` to rebuild the CSVs shipped beside this file.
The sentences are assembled from hand-written fragments with a fixed seed, so the files are reproducible.
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent / "sample_data"
LABELS = ["negative", "neutral", "positive"]

PRODUCTS = ["headphones", "blender", "backpack", "phone case", "desk lamp", "coffee maker", "keyboard", "tent",
            "running shoes", "water bottle", "vacuum cleaner", "office chair", "kettle", "camera strap", "novel",
            "board game", "jacket", "monitor", "toaster", "suitcase"]
OPINIONS = {
    "positive": ["works perfectly", "exceeded my expectations", "is excellent value", "feels really solid",
                 "is a joy to use", "was worth every penny", "arrived quickly and works great",
                 "is the best purchase I made this year", "looks beautiful", "does exactly what I wanted"],
    "negative": ["broke after a week", "is a waste of money", "stopped working almost immediately",
                 "feels cheap and flimsy", "was a huge disappointment", "arrived damaged",
                 "is the worst purchase I made this year", "does not do what it promises", "smells awful",
                 "fell apart on the first use"],
    "neutral": ["is okay for the price", "does the job, nothing more", "is about what I expected",
                "is fine but unremarkable", "works, though the colour differs from the photo",
                "is average overall", "arrived on the expected date", "is similar to my old one",
                "has some good and some bad points", "is neither great nor terrible"],
}
OPENERS = ["", "Honestly, ", "After a month, ", "To be fair, ", "Overall ", "My partner says ", "In short, "]
CLOSERS = {
    "positive": ["", " Highly recommended.", " Would buy again.", " Five stars.", " Love it."],
    "negative": ["", " Avoid.", " Returning it.", " One star.", " Very unhappy."],
    "neutral": ["", " Three stars.", " It is fine.", " No strong feelings.", " Might keep it."],
}


def review(rng: random.Random, label: str) -> str:
    product = rng.choice(PRODUCTS)
    text = f"{rng.choice(OPENERS)}the {product} {rng.choice(OPINIONS[label])}.{rng.choice(CLOSERS[label])}"
    return text[0].upper() + text[1:]


def make_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(review(rng, label), label) for label in (LABELS[i % 3] for i in range(n))]


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def main() -> None:
    HERE.mkdir(exist_ok=True)
    write(HERE / "train.csv", make_rows(600, seed=0))
    write(HERE / "validation.csv", make_rows(150, seed=1))
    print(f"wrote {HERE}/train.csv (600 rows) and validation.csv (150 rows)")


if __name__ == "__main__":
    main()
