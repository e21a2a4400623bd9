"""Sentence splitting by a fixed rule (no model, nothing fetched), so long text is translated a sentence at a time."""
from __future__ import annotations

import re

# Words that end in "." without ending a sentence (English and German, compared lower-case, without the
# final "."). A miss only joins two sentences, which the token limit still bounds.
ABBREVIATIONS = frozenset("""
    mr mrs ms dr prof st jr sr mt ft vs etc approx dept est ed eds inc ltd co corp jan feb mar apr
    jun jul aug sep sept oct nov dec e.g i.e cf al u.s u.k
    hr fr frl nr str bzw usw vgl ggf evtl inkl ca z.b u.a d.h s.o s.u u.ä o.ä bspw max min tel abs
""".split())
NUMBERED = frozenset("no nos nr vol fig art pp p s".split())  # abbreviations only before a number ("No. 5")
ENDS = "。！？"  # CJK sentence ends: no space follows them
# a run of . ! ? … (with closing quotes or brackets), then whitespace; the caller checks what comes next
_CANDIDATE = re.compile(r"[.!?…]+[\"'”’“‘»«›‹)\]]*\s+|[" + ENDS + r"]+[”’」』)]*\s*")
_OPENERS = "\"'“„‚«‹»›([¿¡"


def _ends_sentence(line: str, mark: str, start: int, after: int) -> bool:
    """Whether the punctuation `mark` at line[start:] ends a sentence; line[after] is the next character."""
    if mark[0] in ENDS:
        return after < len(line)
    nxt = line[after:].lstrip(_OPENERS)[:1]
    if not (nxt.isupper() or nxt.isdigit() or line[after] in _OPENERS):
        return False
    if mark[0] != ".":
        return True
    before = line[:start].split()
    word = before[-1].lstrip(_OPENERS).lower() if before else ""
    # an abbreviation, an initial ("J. Smith"), or a German ordinal ("am 3. Mai") does not end a sentence
    return not (word in ABBREVIATIONS or (word in NUMBERED and nxt.isdigit()) or (len(word) == 1 and word.isalpha())
                or (word.isdigit() and len(word) <= 2))


def split_sentences(text: str) -> list[tuple[str, str]]:
    """(sentence, separator) pairs: joining each translation with its separator rebuilds the layout.

    The rule: a sentence ends at a run of `.`, `!`, `?` or `…` (closing quotes or brackets may follow)
    that is followed by whitespace and then an upper-case letter, a digit or an opening quote; not after
    a `.` that closes a known abbreviation (ABBREVIATIONS; NUMBERED ones before a digit), a single
    letter or a one- or two-digit number. `。！？` end a sentence with or without whitespace. A line break always ends one. The
    separator is the line breaks after a sentence that ends a line, a space otherwise ("" at the end).
    """
    pieces: list[tuple[str, str]] = []
    parts = re.split(r"(\s*\n\s*)", text.strip())
    for line, breaks in zip(parts[::2], parts[1::2] + [""]):
        start = 0
        for match in _CANDIDATE.finditer(line):
            if match.end() < len(line) and _ends_sentence(line, match.group(0), match.start(), match.end()):
                pieces.append((line[start:match.end()].strip(), " "))
                start = match.end()
        if line[start:].strip():
            pieces.append((line[start:].strip(), "\n" * breaks.count("\n")))
    if pieces:
        pieces[-1] = (pieces[-1][0], "")
    return pieces
