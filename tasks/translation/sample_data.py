"""The embedded sample: English sentences and a made-up "toy" language (word substitution, nouns before adjectives).

Generated in code with a fixed seed, so `train.py` without data flags runs offline in a minute or two.
"""
from __future__ import annotations

import random

SOURCE_LANG, TARGET_LANG = "en", "toy"
NOUNS = {"dog": "hund", "cat": "mirra", "man": "velo", "woman": "sani", "child": "kipi", "bird": "tavi",
         "horse": "ekko", "boy": "polu", "girl": "lina", "farmer": "agro"}
ADJECTIVES = {"small": "pik", "big": "grom", "red": "roza", "old": "vek", "young": "nuva", "happy": "fela",
              "tired": "lasa", "brown": "bruna"}
VERBS = {"sees": "vidas", "follows": "sekvas", "helps": "helpas", "watches": "rigardas", "finds": "trovas",
         "calls": "vokas"}
PLACES = {"in the park": "en parko", "near the river": "apud rivero", "on the hill": "sur monto",
          "at home": "hejme", "in the garden": "en gardeno"}


def _phrase(rng: random.Random) -> tuple[str, str]:
    """'the small dog' -> 'la hund pik': the toy language puts the adjective after its noun."""
    noun = rng.choice(list(NOUNS))
    if rng.random() < 0.6:
        adjective = rng.choice(list(ADJECTIVES))
        return f"the {adjective} {noun}", f"la {NOUNS[noun]} {ADJECTIVES[adjective]}"
    return f"the {noun}", f"la {NOUNS[noun]}"


def sentence(rng: random.Random) -> tuple[str, str]:
    (subject_en, subject_toy), (object_en, object_toy) = _phrase(rng), _phrase(rng)
    verb = rng.choice(list(VERBS))
    english, toy = f"{subject_en} {verb} {object_en}", f"{subject_toy} {VERBS[verb]} {object_toy}"
    if rng.random() < 0.4:
        place = rng.choice(list(PLACES))
        english, toy = f"{english} {place}", f"{toy} {PLACES[place]}"
    return english[0].upper() + english[1:] + ".", toy[0].upper() + toy[1:] + "."


def make_pairs(n: int, seed: int) -> list[dict]:
    """`n` rows {"translation": {"en": ..., "toy": ...}}."""
    rng = random.Random(seed)
    return [{"translation": dict(zip((SOURCE_LANG, TARGET_LANG), sentence(rng)))} for _ in range(n)]
