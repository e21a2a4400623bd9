"""Translation: metrics against sacrebleu, data formats, bad input, tokenizer, learning, bert2bert, pipeline round trip."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import sacrebleu
import torch
from transformers import AutoTokenizer, pipeline

from shared.toolkit.cli import main
from shared.toolkit.config import ConfigError, parse_config
from shared.inputs.data import DataError
from shared.evaluation.scoring import load_metric
from shared.training.losses import LossSettings
from shared.run import build_run
from shared.task import get_task
from tasks.translation.modeling import train_tokenizer
from tasks.translation.pipeline import TAG
from tests.helpers import build_task

HYPOTHESES = ["The cat sat on the mat.", "A dog runs in the park", "hello world"]
REFERENCES = [["The cat is on the mat.", "A cat sat on the mat."], ["A dog is running in the park.", "Dogs run."],
              ["Hello, world!", "hello world"]]
WORDS = ["ka", "lo", "mi", "ta", "ve", "do", "si", "ra", "be", "no", "zu", "po"]


def _copy_rows(n: int, seed: int) -> list[dict]:
    """A toy copy task: the target repeats the source (learnable by a tiny model in a few hundred steps)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6)))
        rows.append({"translation": {"src": text, "tgt": text}})
    return rows


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _load(train: Path, *flags: str):
    return build_task("translation", "--train_file", str(train), *flags).load_data()


# ---------------------------------------------------------------------- metrics
def test_sacrebleu_module_matches_sacrebleu():
    result = load_metric("sacrebleu").compute(predictions=HYPOTHESES, references=REFERENCES)
    expected = sacrebleu.corpus_bleu(HYPOTHESES, [list(r) for r in zip(*REFERENCES)])
    assert result["bleu"] == pytest.approx(expected.score)
    assert result["counts"] == list(expected.counts) and result["bp"] == pytest.approx(expected.bp)
    assert load_metric("sacrebleu").compute(predictions=["a b c d e"], references=[["a b c d e"]])["bleu"] == pytest.approx(100)


def test_bleu_hand_computed():
    # hypothesis "the cat sat on the mat" vs "the cat sat on a mat": 1-4 gram matches 5/6, 3/5, 2/4, 1/3,
    # equal lengths (BP 1): BLEU = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4)
    result = load_metric("sacrebleu").compute(predictions=["the cat sat on the mat"], references=[["the cat sat on a mat"]])
    assert result["bleu"] == pytest.approx(100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)


def test_chrf_module_matches_sacrebleu():
    streams = [list(r) for r in zip(*REFERENCES)]
    chrf = load_metric("chrf")
    assert chrf.compute(predictions=HYPOTHESES, references=REFERENCES)["chrf"] == pytest.approx(
        sacrebleu.corpus_chrf(HYPOTHESES, streams).score)
    plus = chrf.compute(predictions=HYPOTHESES, references=REFERENCES, word_order=2)["chrf"]
    assert plus == pytest.approx(sacrebleu.metrics.CHRF(word_order=2).corpus_score(HYPOTHESES, streams).score)


def test_uneven_reference_counts_are_refused():
    with pytest.raises(ValueError, match="same number of references"):
        load_metric("sacrebleu").compute(predictions=["a", "b"], references=[["a"], ["b", "c"]])


# ---------------------------------------------------------------------- data
def test_jsonl_and_tsv_give_the_same_pairs(tmp_path):
    rows = _copy_rows(10, 0)
    for row in rows:
        row["translation"]["tgt"] = row["translation"]["src"].upper()
    tsv = tmp_path / "train.tsv"
    tsv.write_text("src\ttgt\n" + "".join(f"{r['translation']['src']}\t{r['translation']['tgt']}\n" for r in rows))
    flags = ("--source_lang", "src", "--target_lang", "tgt", "--validation_split", "0.2")
    from_jsonl, from_tsv = _load(_jsonl(tmp_path / "train.jsonl", rows), *flags), _load(tsv, *flags)
    assert from_jsonl["train"]["source"] == from_tsv["train"]["source"]
    assert from_jsonl["validation"]["target"] == from_tsv["validation"]["target"]
    headless = tmp_path / "plain.tsv"
    headless.write_text("".join(f"{r['translation']['src']}\t{r['translation']['tgt']}\n" for r in rows))
    assert len(_load(headless, "--validation_split", "0.2")["train"]) == 8  # no header: every line is a pair


@pytest.mark.parametrize("case, match", [
    ("missing_lang", r"train\.jsonl line 3: no 'tgt' text"),
    ("empty_text", r"train\.jsonl line 3: empty target text"),
    ("no_lang_flags", r"train\.jsonl: give --source_lang and --target_lang; the first row has \['src', 'tgt'\]"),
    ("tsv_columns", r"train\.tsv line 3: expected 2 tab-separated columns"),
    ("missing_file", r"nope\.jsonl: no such file"),
])
def test_bad_input_is_refused_with_file_and_line(tmp_path, case, match):
    rows = _copy_rows(5, 0)
    flags = ["--source_lang", "src", "--target_lang", "tgt"]
    path = tmp_path / "train.jsonl"
    if case == "missing_lang":
        del rows[2]["translation"]["tgt"]
    elif case == "empty_text":
        rows[2]["translation"]["tgt"] = " "
    elif case == "no_lang_flags":
        flags = []
    elif case == "tsv_columns":
        path = tmp_path / "train.tsv"
        path.write_text("a\tb\nc\td\ne\tf\tg\n")
    elif case == "missing_file":
        path = tmp_path / "nope.jsonl"
    if case not in ("tsv_columns", "missing_file"):
        _jsonl(path, rows)
    with pytest.raises(DataError, match=match):
        _load(path, *flags)


def test_same_source_and_target_language_is_refused():
    with pytest.raises(ConfigError, match="both 'de'"):
        parse_config(get_task("translation").config_class, ["--source_lang", "de", "--target_lang", "de"])


def test_scratch_tokenizer_appends_eos_and_reloads_without_sentencepiece(tmp_path):
    tokenizer = train_tokenizer(["Der Hund läuft.", "The dog runs.", "Ein Mann, eine Frau."] * 5, vocab_size=100)
    ids = tokenizer("The dog runs.")["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id == 1 and tokenizer.pad_token_id == 0
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("The dog runs.")["input_ids"] == ids
    assert reloaded.decode(ids, skip_special_tokens=True) == "The dog runs."


def test_collate_pads_labels_with_minus_100_and_keeps_row_indices(tmp_path):
    task = build_task("translation", "--train_file", str(_jsonl(tmp_path / "t.jsonl", _copy_rows(20, 0))),
                      "--source_lang", "src", "--target_lang", "tgt")
    data = task.load_data()
    tokenizer = task.build_processor(data)
    features = task.preprocess(tokenizer, data["validation"], "validation", data)
    batch = task.collate_fn(tokenizer)([dict(features[i]) for i in range(2)])
    assert batch["example_index"].tolist() == [0, 1]
    lengths = [len(features[i]["labels"]) for i in range(2)]
    short = lengths.index(min(lengths))
    assert (batch["labels"][short, min(lengths):] == -100).all() and (batch["labels"][short, :min(lengths)] >= 0).all()


# ---------------------------------------------------------------------- training and export
@pytest.fixture(scope="module")
def copy_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("copy_run")
    # 20 epochs: with 8, some initialisations (the 512-position model's) stay on the plateau of BLEU 0
    # until the learning rate has decayed; with 20 the same one reaches 92 after epoch 5 and 100 later
    main("translation", [
        "--train_file", str(_jsonl(tmp / "train.jsonl", _copy_rows(480, 0))),
        "--validation_file", str(_jsonl(tmp / "valid.jsonl", _copy_rows(40, 1))),
        "--source_lang", "src", "--target_lang", "tgt", "--output_dir", str(tmp), "--run_name", "run",
        "--d_model", "128", "--ffn_dim", "256", "--encoder_layers", "2", "--decoder_layers", "2",
        "--dropout", "0", "--label_smoothing", "0", "--learning_rate", "1e-3", "--num_train_epochs", "20",
        "--per_device_train_batch_size", "16", "--num_beams", "1", "--max_target_length", "16",
        "--save_strategy", "no", "--mixed_precision", "no", "--seed", "0"])
    return tmp / "run"


def test_tiny_marian_learns_to_copy(copy_run):
    history = [json.loads(line) for line in (copy_run / "metrics.jsonl").read_text().splitlines()]
    bleu = [r["eval/bleu"] for r in history if "eval/bleu" in r]
    assert bleu[0] < 30 and max(bleu) >= 90, bleu
    results = json.loads((copy_run / "results.json").read_text())
    assert results["eval_bleu"] == max(bleu) and results["eval_chrf"] >= 90
    rows = [json.loads(line) for line in (copy_run / "translations.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and set(rows[0]) == {"source", "reference", "prediction"}
    assert (copy_run / "samples.md").read_text().startswith("| source | reference | prediction |")


def test_pipeline_round_trip(copy_run):
    translate = pipeline(TAG, model=str(copy_run / "best"))
    assert type(translate).__name__ == "Seq2SeqTranslationPipeline"
    one = translate("ka lo mi ta")
    assert one == [{"translation_text": "ka lo mi ta"}]
    texts = ["ve do si", "ra be no zu", "po ka ka"]
    batch = translate(texts, batch_size=2, num_beams=2)
    assert [b["translation_text"] for b in batch] == texts
    several = translate("ve do si", num_beams=3, num_return_sequences=2)
    assert len(several) == 2
    with pytest.raises(ValueError, match="non-empty"):
        translate("  ")


@pytest.mark.parametrize("lora", [[], ["--use_peft"]], ids=["full", "lora"])
def test_bert2bert_warm_start_trains_saves_and_reloads(tiny_bert_dir, tmp_path, lora):
    rows = [{"translation": {"en": f"the {a} is {b}", "xx": f"{b} {a}"}}
            for a in ("kettle", "lamp", "phone") for b in ("great", "awful", "lovely")]
    train = _jsonl(tmp_path / "train.jsonl", rows * 4)
    main("translation", ["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(train),
                         "--source_lang", "en", "--target_lang", "xx", "--source_prefix", "to xx: ",
                         "--output_dir", str(tmp_path), "--run_name", "b2b", "--max_train_steps", "3",
                         "--per_device_train_batch_size", "8", "--generation_max_length", "8", "--num_beams", "2",
                         "--save_strategy", "no", "--mixed_precision", "no", "--label_smoothing", "0.1", *lora])
    best = tmp_path / "b2b" / "best"
    assert (best / "adapter" / "adapter_config.json").exists() == bool(lora)  # with LoRA: merged weights beside it
    config = json.loads((best / "config.json").read_text())
    assert config["model_type"] == "encoder-decoder" and config["prefix"] == "to xx: "
    assert config["decoder_start_token_id"] == AutoTokenizer.from_pretrained(best).cls_token_id
    translate = pipeline(TAG, model=str(best))
    assert type(translate.model).__name__ == "EncoderDecoderModel" and translate.prefix == "to xx: "
    assert isinstance(translate("the lamp is great")[0]["translation_text"], str)


def test_label_smoothing_changes_the_loss_but_ignores_padding(tmp_path):
    task = build_task("translation", "--train_file", str(_jsonl(tmp_path / "t.jsonl", _copy_rows(20, 0))),
                      "--source_lang", "src", "--target_lang", "tgt", "--d_model", "32", "--ffn_dim", "32",
                      "--encoder_layers", "1", "--decoder_layers", "1", "--label_smoothing", "0.2")
    run = build_run(task, splits=("train",))
    model, features = run.model.eval(), run.datasets["train"]
    batch = run.collate([dict(features[i]) for i in range(4)])
    loss = LossSettings.from_config(task.cfg, None)  # what the engine hands compute_loss: --label_smoothing 0.2
    with torch.no_grad():
        smoothed, outputs = task.compute_loss(model, batch, loss)
        plain, _ = task.compute_loss(model, batch, LossSettings(label_smoothing=0.0))
    assert plain.item() == pytest.approx(outputs.loss.item()) and smoothed.item() != pytest.approx(plain.item())
    manual = torch.nn.functional.cross_entropy(outputs.logits.flatten(0, 1), batch["labels"].flatten(),
                                               ignore_index=-100, label_smoothing=0.2)
    assert smoothed.item() == pytest.approx(manual.item(), rel=1e-5)


@pytest.mark.slow
def test_two_processes_translate_every_sentence_once(tmp_path):
    """31 sentences with eval batch 4 per process: generation through the distributed wrapper, no duplicates."""
    from tests.helpers import launch_two_cpu_processes

    valid = _copy_rows(31, 1)
    launch_two_cpu_processes(Path(__file__).resolve().parents[2] / "tasks" / "translation" / "train.py", [
        "--train_file", str(_jsonl(tmp_path / "train.jsonl", _copy_rows(40, 0))),
        "--validation_file", str(_jsonl(tmp_path / "valid.jsonl", valid)), "--source_lang", "src",
        "--target_lang", "tgt", "--output_dir", str(tmp_path), "--run_name", "two", "--num_train_epochs", "1",
        "--per_device_eval_batch_size", "4", "--d_model", "32", "--ffn_dim", "32", "--encoder_layers", "1",
        "--decoder_layers", "1", "--num_beams", "2", "--max_target_length", "12", "--mixed_precision", "no",
        "--save_strategy", "no"])
    rows = [json.loads(line) for line in (tmp_path / "two" / "translations.jsonl").read_text().splitlines()]
    assert sorted(r["source"] for r in rows) == sorted(r["translation"]["src"] for r in valid)
