"""Final-evaluation figures and files: per-type F1 bars, an entity-type confusion matrix, predictions in CoNLL."""
from __future__ import annotations

from pathlib import Path

from shared.evaluation import plots
from shared.evaluation.scoring import load_metric
from tasks.token_classification.alignment import entity_confusion


def write_report(out_dir: Path, tokens: list[list[str]], references: list[list[str]],
                 predictions: list[list[str]]) -> list[Path]:
    """plots/per_type_f1.png, plots/entity_confusion.png and, beside results.json, predictions.conll
    (word, true tag, predicted tag: the three-column input conlleval reads)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = load_metric("seqeval").compute(predictions=predictions, references=references)["per_type"]
    kinds = sorted(scores)
    written = []
    if kinds:
        written.append(plots.plot_per_class_bars([scores[k]["f1"] for k in kinds], kinds,
                                                 "entity F1 per type (strict IOB2)", out_dir / "per_type_f1.png"))
        matrix = entity_confusion(references, predictions, kinds)
        written.append(plots.plot_confusion_matrix(matrix, kinds + ["none"], out_dir / "entity_confusion.png"))
    path = out_dir.parent / "predictions.conll"
    with path.open("w", encoding="utf-8") as handle:
        for words, true, guessed in zip(tokens, references, predictions):
            handle.writelines(f"{w}\t{t}\t{p}\n" for w, t, p in zip(words, true, guessed))
            handle.write("\n")
    return written + [path]
