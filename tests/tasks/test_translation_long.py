"""Translation beyond short captions: position table, sentence splitting, long text through the pipeline."""
from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
import torch
from transformers import MarianConfig, MarianMTModel, pipeline

from shared.toolkit.cli import main
from shared.toolkit.config import ConfigError
from shared.task import get_task
from tasks.translation.modeling import train_tokenizer
from tasks.translation.pipeline import TAG
from tasks.translation.sentences import split_sentences
from tests.helpers import build_task

WORDS = ["ka", "lo", "mi", "ta", "ve", "do", "si", "ra", "be", "nu", "zu", "po"]


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 6))]
    return " ".join([words[0].capitalize(), *words[1:]]) + "."


def _paragraph(chars: int, seed: int) -> list[str]:
    rng, sentences = random.Random(seed), []
    while sum(len(s) + 1 for s in sentences) < chars:
        sentences.append(_sentence(rng))
    return sentences


def _jsonl(path: Path, sentences: list[str]) -> Path:
    path.write_text("".join(json.dumps({"translation": {"src": s, "tgt": s}}) + "\n" for s in sentences))
    return path


# ---------------------------------------------------------------------- the splitting rule
@pytest.mark.parametrize("text, expected", [
    ("Ein Hund läuft. Eine Frau lacht!  Wer kommt? Niemand.", ["Ein Hund läuft.", "Eine Frau lacht!", "Wer kommt?", "Niemand."]),
    ("Dr. Müller kommt am 3. Mai, z.B. um 5 Uhr. Dann geht er.", ["Dr. Müller kommt am 3. Mai, z.B. um 5 Uhr.", "Dann geht er."]),
    ("Mr. J. Smith was born in 1990. He moved, i.e. left. 3 dogs ran. See No. 512. He said no. Fine.",
     ["Mr. J. Smith was born in 1990.", "He moved, i.e. left.", "3 dogs ran.", "See No. 512.", "He said no.", "Fine."]),
    ('He said "Go." She went. »Ja.« Gut...', ['He said "Go."', "She went.", "»Ja.«", "Gut..."]),
    ("a man. a dog. version 2.0 is out", ["a man. a dog. version 2.0 is out"]),  # no capital after: one sentence
    ("你好。我很好！谢谢", ["你好。", "我很好！", "谢谢"]),
])
def test_sentence_rule(text, expected):
    assert [s for s, _ in split_sentences(text)] == expected


def test_separators_keep_spaces_and_line_breaks():
    pieces = split_sentences("  One. Two.\n\nThree\nFour.  ")
    assert pieces == [("One.", " "), ("Two.", "\n\n"), ("Three", "\n"), ("Four.", "")]
    assert "".join(s + sep for s, sep in pieces) == "One. Two.\n\nThree\nFour."


# ---------------------------------------------------------------------- the position table
def _tiny_config(tmp_path, *flags):
    train = _jsonl(tmp_path / "t.jsonl", _paragraph(400, 0))
    task = build_task("translation", "--train_file", str(train), "--source_lang", "src", "--target_lang", "tgt",
                      "--d_model", "32", "--ffn_dim", "32", "--encoder_layers", "1", "--decoder_layers", "1",
                      "--attention_heads", "2", *flags)
    return task, task.cfg


def test_scratch_positions_are_sized_for_use_not_for_the_training_length(tmp_path):
    task, cfg = _tiny_config(tmp_path, "--max_source_length", "16", "--max_target_length", "16")
    data = task.load_data()
    tokenizer = task.build_processor(data)
    model = task.build_model(None, tokenizer).eval()
    assert model.config.max_position_embeddings == 512 and model.config.max_input_length == 512
    assert model.config.max_source_length == 16 and tokenizer.model_max_length == 512
    ids = torch.randint(3, len(tokenizer), (1, 300))  # far past the 16 tokens of training, and the old 18 positions
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), num_beams=1, max_length=400,
                             min_new_tokens=200)
    assert out.shape[1] > 200


def test_repetition_settings_are_saved_in_the_generation_config(tmp_path):
    task, cfg = _tiny_config(tmp_path, "--no_repeat_ngram_size", "3", "--repetition_penalty", "1.2")
    saved = task.build_model(None, task.build_processor(task.load_data())).generation_config
    assert (saved.no_repeat_ngram_size, saved.repetition_penalty, saved.length_penalty) == (3, 1.2, 1.0)
    with pytest.raises(ConfigError, match=r"--repetition_penalty must be in \(0, inf\)"):
        _tiny_config(tmp_path, "--repetition_penalty", "0")


def test_position_flag_and_its_check(tmp_path):
    _, cfg = _tiny_config(tmp_path, "--max_position_embeddings", "1024", "--max_source_length", "700")
    assert cfg.max_position_embeddings == 1024
    with pytest.raises(ConfigError, match="--max_position_embeddings 512 is below the longest length asked for .600."):
        _tiny_config(tmp_path, "--max_source_length", "600")


# ---------------------------------------------------------------------- long text through the pipeline
@pytest.fixture(scope="module")
def copy_model(tmp_path_factory) -> Path:
    """A tiny Marian trained to copy capitalised 3-6 word sentences, with sources cut at 16 tokens."""
    tmp = tmp_path_factory.mktemp("copy_long")
    rng = random.Random(0)
    main("translation", [
        "--train_file", str(_jsonl(tmp / "train.jsonl", [_sentence(rng) for _ in range(480)])),
        "--validation_file", str(_jsonl(tmp / "valid.jsonl", [_sentence(rng) for _ in range(20)])),
        "--source_lang", "src", "--target_lang", "tgt", "--output_dir", str(tmp), "--run_name", "run",
        "--d_model", "128", "--ffn_dim", "256", "--encoder_layers", "2", "--decoder_layers", "2",
        "--dropout", "0", "--label_smoothing", "0", "--learning_rate", "1e-3", "--num_train_epochs", "30",
        "--per_device_train_batch_size", "16", "--num_beams", "1", "--max_source_length", "16",
        "--max_target_length", "16", "--eval_strategy", "no", "--save_strategy", "no", "--mixed_precision", "no",
        "--seed", "0"])
    return tmp / "run" / "best"


def test_a_2000_character_paragraph_is_translated_sentence_by_sentence(copy_model):
    sentences = _paragraph(2000, 1)
    paragraph = " ".join(sentences)
    assert len(paragraph) >= 2000
    translate = pipeline(TAG, model=str(copy_model))
    assert len(translate.tokenizer(paragraph)["input_ids"]) > 16  # over the training length: split
    seen = []
    preprocess = translate.preprocess
    translate.preprocess = lambda text, **kw: seen.append(text) or preprocess(text, **kw)
    result = translate(paragraph)
    assert seen == sentences  # every sentence went to the model, once, in order
    (out,) = result
    assert "cut_sentences" not in out
    translated = [s.strip() + "." for s in out["translation_text"].split(".") if s.strip()]
    assert len(translated) == len(sentences)
    assert sum(t == s for t, s in zip(translated, sentences)) >= 0.9 * len(sentences)


def test_line_breaks_survive_and_short_text_is_not_split(copy_model):
    translate = pipeline(TAG, model=str(copy_model))
    assert translate("Ka lo mi.\nVe do si.")[0]["translation_text"] == "Ka lo mi.\nVe do si."
    seen = []
    preprocess = translate.preprocess
    translate.preprocess = lambda text, **kw: seen.append(text) or preprocess(text, **kw)
    translate(["Ka lo. Mi ta.", "Ve do si."], split_sentences="auto")
    assert seen == ["Ka lo. Mi ta.", "Ve do si."]  # within the training length: translated whole, as before
    with pytest.raises(ValueError, match="split_sentences"):
        translate("Ka lo.", split_sentences="yes")


def _old_style_model(tmp_path: Path) -> Path:
    """A model as the task saved them before: 66 positions, tokenizer limit 64, no stated input limit."""
    tokenizer = train_tokenizer([" ".join(WORDS)] * 20 + [s for s in _paragraph(300, 0)], vocab_size=60)
    tokenizer.model_max_length = 64
    config = MarianConfig(vocab_size=len(tokenizer), decoder_vocab_size=len(tokenizer), d_model=16,
                          encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                          encoder_ffn_dim=16, decoder_ffn_dim=16, max_position_embeddings=66,
                          pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, forced_eos_token_id=1)
    torch.manual_seed(0)
    model = MarianMTModel(config)
    model.generation_config.max_length, model.generation_config.num_beams = 64, 1
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return tmp_path


def test_an_over_long_sentence_is_cut_into_pieces_and_said(tmp_path, caplog):
    translate = pipeline(TAG, model=str(_old_style_model(tmp_path)))
    sentences = _paragraph(2000, 2)
    monster = " ".join(w for s in _paragraph(600, 3) for w in s.rstrip(".").lower().split()) + "."
    seen = []
    preprocess = translate.preprocess
    translate.preprocess = lambda text, **kw: seen.append(text) or preprocess(text, **kw)
    with caplog.at_level(logging.WARNING, logger="tasks.translation.pipeline"):
        result = translate(" ".join(sentences[:20]) + " Ka " + monster + " " + " ".join(sentences[20:]),
                           max_new_tokens=4)
    assert result[0]["cut_sentences"] == 1 and "over the model's input limit of 64" in caplog.text
    assert all(len(translate.tokenizer(s)["input_ids"]) <= 64 for s in seen)
    assert " ".join(seen).split() == (" ".join(sentences[:20]) + " Ka " + monster + " " + " ".join(sentences[20:])).split()
    assert seen[:20] == sentences[:20] and seen[-len(sentences[20:]):] == sentences[20:]


def test_demo_says_when_a_sentence_was_cut():
    predict = get_task("translation").demo().predict
    assert predict(lambda text, **kw: [{"translation_text": "hi"}], "hallo", 2.0) == "hi"
    cut = predict(lambda text, **kw: [{"translation_text": "hi", "cut_sentences": 2}], "hallo", 2.0)
    assert cut.startswith("hi") and "2 sentence(s) over the model's input limit" in cut
