"""Words to sub-token windows and back: label alignment, overlapping windows, one prediction per word."""
from __future__ import annotations

IGNORE = -100  # positions the loss and the scorer skip: specials, padding, later sub-tokens of a word


def continuation_ids(names: list[str]) -> list[int]:
    """For each tag id, the id a word's later sub-tokens carry under --label_all_tokens (B-X -> I-X)."""
    index = {name: i for i, name in enumerate(names)}
    return [index.get("I-" + name[2:], i) if name.startswith("B-") else i for i, name in enumerate(names)]


def encode_windows(processor, words: list[list[str]], tags: list[list[int]], max_length: int, stride: int,
                   label_all_tokens: bool, continuation: list[int]) -> dict:
    """Tokenise pre-split sentences into windows of at most `max_length` sub-tokens, consecutive windows sharing
    `stride` of them, so no word is cut off. Each window keeps its sentence (`example_index`) and, per position,
    the word whose first sub-token it is (`word_index`, else IGNORE) and its distance to the window's edge."""
    encoded = processor(words, is_split_into_words=True, truncation=True, max_length=max_length, stride=stride,
                        return_overflowing_tokens=True)
    owners = encoded.pop("overflow_to_sample_mapping")
    labels, word_index, margins = [], [], []
    for window, owner in enumerate(owners):
        ids = encoded.word_ids(window)
        row_labels, row_words, row_margin, previous = [], [], [], None
        real = [p for p, w in enumerate(ids) if w is not None]
        first, last = (real[0], real[-1]) if real else (0, 0)
        for position, word in enumerate(ids):
            is_first = word is not None and word != previous
            if word is None:
                row_labels.append(IGNORE)
            elif is_first:
                row_labels.append(tags[owner][word])
            else:
                row_labels.append(continuation[tags[owner][word]] if label_all_tokens else IGNORE)
            row_words.append(word if is_first else IGNORE)
            row_margin.append(min(position - first, last - position) if is_first else IGNORE)
            previous = word
        labels.append(row_labels)
        word_index.append(row_words)
        margins.append(row_margin)
    return {**encoded, "labels": labels, "example_index": list(owners), "word_index": word_index,
            "word_margin": margins}


def window_predictions(predicted: list[list[int]], example_index: list[int], word_index: list[list[int]],
                       margins: list[list[int]]) -> list[tuple[int, list[tuple[int, int, int]]]]:
    """Per window: (sentence, [(word, predicted id, margin)]) for the first sub-token of each word in it."""
    out = []
    for row, example, words, margin in zip(predicted, example_index, word_index, margins):
        out.append((example, [(w, p, m) for p, w, m in zip(row, words, margin) if w != IGNORE]))
    return out


def word_predictions(windows, lengths: list[int], outside_id: int) -> tuple[list[list[int]], int]:
    """One predicted id per word of each sentence: from the window where the word sits farthest from an
    edge (most context on both sides). Words no window covers (no sub-token at all) count as `outside_id`;
    the second value says how many there were, so nothing leaves the scoring unnoticed."""
    best: dict[tuple[int, int], tuple[int, int]] = {}
    for example, words in windows:
        for word, predicted, margin in words:
            key = (example, word)
            if key not in best or margin > best[key][0]:
                best[key] = (margin, predicted)
    out, unscored = [], 0
    for example, length in enumerate(lengths):
        row = []
        for word in range(length):
            found = best.get((example, word))
            unscored += found is None
            row.append(outside_id if found is None else found[1])
        out.append(row)
    return out, unscored


def entities(tags: list[str]) -> set[tuple[str, int, int]]:
    """(type, first word, last word) of each entity in strict IOB2: B-X opens, I-X of the same type continues."""
    found, kind, start = set(), None, 0
    for position, tag in enumerate(tags + ["O"]):
        continues = kind is not None and tag == f"I-{kind}"
        if kind is not None and not continues:
            found.add((kind, start, position - 1))
            kind = None
        if tag.startswith("B-"):
            kind, start = tag[2:], position
    return found


def entity_confusion(references: list[list[str]], predictions: list[list[str]], kinds: list[str]) -> list[list[int]]:
    """Counts over true type (rows) x predicted type (columns) with a last row and column 'none': a true entity
    whose exact span was predicted with some type, missed (column none), or a predicted span that is no entity
    (row none)."""
    names = list(kinds) + ["none"]
    index = {name: i for i, name in enumerate(names)}
    matrix = [[0] * len(names) for _ in names]
    for reference, prediction in zip(references, predictions):
        true = {(s, e): k for k, s, e in entities(reference)}
        guessed = {(s, e): k for k, s, e in entities(prediction)}
        for span, kind in true.items():
            matrix[index[kind]][index.get(guessed.get(span, "none"), index["none"])] += 1
        for span, kind in guessed.items():
            if span not in true and kind in index:
                matrix[index["none"]][index[kind]] += 1
    return matrix
