"""Toy entity data and a tiny BERT tagger shared by the token-classification test files."""
from __future__ import annotations

import random

import pytest
import torch

FIRST = {"alice": "PER", "bob": "PER", "carol": "PER", "paris": "LOC", "new": "LOC", "acme": "ORG", "globex": "ORG"}
SECOND = {"PER": ["smith", "jones"], "LOC": ["york"], "ORG": ["corp"]}
FILLER = ["met", "in", "at", "the", "visited", "from", "works", "for", "today", "with"]


def toy_sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Sentences whose tags the words decide (a first word opens its type, a second word continues it)."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words = []
        for _ in range(rng.randint(2, 4)):
            words += [(w, "O") for w in rng.sample(FILLER, rng.randint(1, 2))]
            first = rng.choice(sorted(FIRST))
            kind = FIRST[first]
            words.append((first, f"B-{kind}"))
            if first == "new" or rng.random() < 0.5:
                words.append((rng.choice(SECOND[kind]), f"I-{kind}"))
        sentences.append(words)
    return sentences


def write_conll(path, sentences, separator="\t") -> str:
    path.write_text("".join("".join(f"{w}{separator}{t}\n" for w, t in s) + "\n" for s in sentences))
    return str(path)


@pytest.fixture(scope="module")
def tiny_tagger_dir(tmp_path_factory):
    """A 2-layer, 32-wide BERT whose small WordPiece vocabulary splits some toy words into several pieces.

    The vocabulary is the one tokenizers' WordPiece trainer gave for these toy sentences (vocab_size 90),
    written out: the trainer breaks ties in another order in every process, and those ids moved this
    test's F1 between 0.87 and 0.92 from run to run.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

    out = tmp_path_factory.mktemp("tiny_tagger")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k",
             "l", "m", "n", "o", "p", "q", "r", "s", "t", "v", "w", "x", "y", "z", "##r", "##o", "##m", "##t", "##q",
             "##n", "##c", "##e", "##l", "##i", "##w", "##k", "##s", "##d", "##a", "##h", "##b", "##x", "##y", "##p",
             "##or", "##it", "##ork", "##is", "##ar", "##ob", "##ith", "york", "at", "par", "paris", "work", "works",
             "ne", "new", "th", "the", "car", "vis", "##ol", "##ed", "##ited", "carol", "visited", "fr", "##om",
             "from", "me", "met", "for", "in", "bob", "with", "gl", "##ex", "##obex", "globex", "to", "##da", "toda"]
    tokenizer = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.save(str(out / "tokenizer.json"))
    BertTokenizerFast(tokenizer_file=str(out / "tokenizer.json")).save_pretrained(out)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertForTokenClassification(config).save_pretrained(out)
    return out
