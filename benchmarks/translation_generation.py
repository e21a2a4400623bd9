"""Decoding settings of a trained translation model on Multi30k validation: BLEU, chrF and repeats per setting.

    python -m benchmarks.translation_generation --model outputs/translation/<run>/best [--max_samples 200]

Each setting is one beam-search pass over the validation set with the model's saved generation config
(beams, length) and the three repetition settings neutral, but for the one the row names.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from benchmarks.common import markdown_table
from shared.inputs.data import benchmark_data_dir
from shared.evaluation.scoring import load_metric

NEUTRAL = {"no_repeat_ngram_size": 0, "repetition_penalty": 1.0, "length_penalty": 1.0}  # whatever was saved
SETTINGS = ["baseline", "no_repeat_ngram_size=3", "repetition_penalty=1.2", "length_penalty=0.8", "length_penalty=1.2"]


def overrides(setting: str) -> dict:
    """'baseline' or 'name=value[,name=value]' over NEUTRAL, e.g. 'no_repeat_ngram_size=3,length_penalty=1.2'."""
    if setting == "baseline":
        return dict(NEUTRAL)
    pairs = dict(item.split("=", 1) for item in setting.split(","))
    if not pairs.keys() <= NEUTRAL.keys():
        raise SystemExit(f"setting {setting!r}: only {sorted(NEUTRAL)} can be set")
    return {**NEUTRAL, **{k: type(NEUTRAL[k])(v) for k, v in pairs.items()}}


def read_pairs(path: Path, source: str, target: str, limit: int | None) -> tuple[list[str], list[str]]:
    rows = [json.loads(line)["translation"] for line in path.read_text().splitlines() if line.strip()]
    rows = rows[:limit] if limit else rows
    return [r[source] for r in rows], [r[target] for r in rows]


def translate(model, tokenizer, sources: list[str], batch_size: int, settings: dict) -> list[str]:
    """Beam search over length-sorted batches (little padding), outputs back in input order."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs: dict[int, str] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = tokenizer([sources[i] for i in chunk], return_tensors="pt", padding=True, truncation=True,
                          max_length=getattr(model.config, "max_source_length", None))
        with torch.inference_mode():
            ids = model.generate(**batch, **settings)
        for i, text in zip(chunk, tokenizer.batch_decode(ids, skip_special_tokens=True)):
            outputs[i] = text.strip()
    return [outputs[i] for i in range(len(sources))]


def repeats(text: str, n: int = 3) -> bool:
    """Whether a word n-gram occurs twice in one output ("in front of a fence in front of a fence")."""
    words = text.lower().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def score(predictions: list[str], references: list[str]) -> dict:
    refs = [[r] for r in references]
    return {"bleu": round(load_metric("sacrebleu").compute(predictions=predictions, references=refs)["bleu"], 2),
            "chrf": round(load_metric("chrf").compute(predictions=predictions, references=refs)["chrf"], 2),
            "repeat_3gram_pct": round(100 * sum(map(repeats, predictions)) / len(predictions), 2),
            "mean_words": round(sum(len(p.split()) for p in predictions) / len(predictions), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="a saved translation model folder (e.g. <run>/best)")
    parser.add_argument("--data", default=str(benchmark_data_dir() / "translation" / "multi30k_de_en" / "validation.jsonl"))
    parser.add_argument("--source_lang", default="de")
    parser.add_argument("--target_lang", default="en")
    parser.add_argument("--settings", nargs="+", default=SETTINGS, help="'baseline' or name=value[,name=value]")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_samples", type=int, default=None)
    parser.add_argument("--output", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    sources, references = read_pairs(Path(args.data), args.source_lang, args.target_lang, args.max_samples)
    saved = {k: getattr(model.generation_config, k) for k in ("num_beams", "max_length", "no_repeat_ngram_size",
                                                              "repetition_penalty", "length_penalty")}
    print(f"{len(sources)} pairs; saved generation config {saved}", flush=True)
    rows = []
    for name in args.settings:
        started = time.perf_counter()
        predictions = translate(model, tokenizer, sources, args.batch_size, overrides(name))
        rows.append({"setting": name, **score(predictions, references),
                     "seconds": round(time.perf_counter() - started, 1)})
        print(rows[-1], flush=True)
    table = markdown_table(rows, ["setting", "bleu", "chrf", "repeat_3gram_pct", "mean_words", "seconds"])
    print(table)
    if args.output:
        Path(args.output).write_text(json.dumps({"model": args.model, "saved": saved, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
