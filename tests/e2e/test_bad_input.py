"""One table of bad inputs across the tasks: each stops through the real CLI with one clear line naming what
and where, a non-zero exit, and no checkpoint that a later `--resume_from_checkpoint latest` could pick.

To cover a new task, append BadInput rows: `make(tmp, fx)` writes the bad files under tmp and returns the
flags (the runner adds --output_dir, --run_name and --mixed_precision no); `expect` is a regex the error
line must match. Rows with `subprocess=True` also run `tasks/<task>/train.py` in a child process.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from PIL import Image

from shared.training.checkpoint import CheckpointManager
from shared.toolkit.cli import main
from shared.task import list_tasks
from tests.e2e.bad_box_and_mask_inputs import DETECTION, SEGMENTATION, BadInput
from tests.helpers import tiny_image_args, tiny_image_data, tiny_text_args, tiny_vit_dir, toy_reviews, write_csv

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ text classification
def _text(tmp: Path, fx: dict, train_rows=None, validation_rows=None, header=("text", "label"), *extra: str):
    train = write_csv(tmp / "train.csv", train_rows or toy_reviews(24, 1), header)
    validation = write_csv(tmp / "validation.csv", validation_rows or toy_reviews(8, 2), header)
    return ["--model_name_or_path", str(fx["bert"]), "--train_file", str(train), "--validation_file", str(validation),
            *extra]


def _file(tmp: Path, name: str, text: str) -> Path:
    (tmp / name).write_text(text)
    return tmp / name


TEXT = [
    BadInput("text-unknown-flag", "text_classification", lambda t, fx: _text(t, fx) + ["--learning_rat", "1e-3"],
             r"not used by the HfArgumentParser: \['--learning_rat', '1e-3'\]", subprocess=True),
    BadInput("text-negative-lr", "text_classification", lambda t, fx: _text(t, fx) + ["--learning_rate", "-1"],
             r"--learning_rate must be > 0, got -1"),
    BadInput("text-zero-batch", "text_classification",
             lambda t, fx: _text(t, fx) + ["--per_device_train_batch_size", "0"],
             r"--per_device_train_batch_size must be >= 1, got 0"),
    BadInput("text-bad-choice", "text_classification", lambda t, fx: _text(t, fx) + ["--mixed_precision", "fp32"],
             r"argument --mixed_precision/--mixed-precision: invalid choice: 'fp32' .*; see --help"),
    BadInput("text-recipe-missing", "text_classification", lambda t, fx: ["--config", str(t / "nope.yaml")],
             r"--config .*nope\.yaml: no such file"),
    BadInput("text-recipe-unknown-key", "text_classification",
             lambda t, fx: ["--config", str(_file(t, "r.yaml", "learning_rate: 1e-3\nlerning_rate: 2\n"))],
             r"--config .*r\.yaml: unknown option\(s\) \['lerning_rate'\]"),
    BadInput("text-recipe-not-mapping", "text_classification",
             lambda t, fx: ["--config", str(_file(t, "r.yaml", "- learning_rate\n- 1e-3\n"))],
             r"--config .*r\.yaml: expected a mapping of option: value, got list"),
    BadInput("text-fp16-on-cpu", "text_classification", lambda t, fx: _text(t, fx) + ["--mixed_precision", "fp16"],
             r"--mixed_precision fp16 needs a CUDA GPU; on a CPU use bf16"),
    BadInput("text-missing-file", "text_classification",
             lambda t, fx: ["--train_file", str(t / "gone.csv"), "--validation_file", str(t / "gone.csv")],
             r"gone\.csv: no such file", subprocess=True),
    BadInput("text-unsupported-extension", "text_classification",
             lambda t, fx: ["--train_file", str(_file(t, "train.xlsx", "x"))],
             r"train\.xlsx: unsupported extension '\.xlsx'"),
    BadInput("text-wrong-column", "text_classification", lambda t, fx: _text(t, fx, header=("review", "label")),
             r"train\.csv: missing column\(s\) \['text'\]; found \['review', 'label'\]"),
    BadInput("text-empty-row", "text_classification",
             lambda t, fx: _text(t, fx, toy_reviews(4, 1) + [("  ", "pos")] + toy_reviews(4, 3)),
             r"train\.csv row 4 \(line 6\): empty text in column 'text'"),
    BadInput("text-unknown-label", "text_classification",
             lambda t, fx: _text(t, fx, None, toy_reviews(3, 2) + [("the lamp is fine", "meh")]),
             r"validation\.csv row 3 \(line 5\): unknown label 'meh'"),
    BadInput("text-missing-label", "text_classification",
             lambda t, fx: _text(t, fx, toy_reviews(3, 1) + [("the lamp is fine", "")]),
             r"train\.csv row 3 \(line 5\): missing label"),
    BadInput("text-single-class", "text_classification",
             lambda t, fx: _text(t, fx, [(text, "pos") for text, _ in toy_reviews(8, 1)]),
             r"train\.csv: column 'label' has a single class \['pos'\]"),
]


# ------------------------------------------------------------------ question answering
def _qa_rows() -> list[dict]:
    contexts = [("The capital of Kalo is Mirta.", "What is the capital of Kalo?", "Mirta"),
                ("Venor was founded by Sira Bel.", "Who founded Venor?", "Sira Bel")]
    return [{"id": f"q{i}", "question": q, "context": c, "answers": {"text": [a], "answer_start": [c.index(a)]}}
            for i, (c, q, a) in enumerate(contexts * 3)]


def _qa(tmp: Path, change: Callable[[list[dict]], None] = lambda rows: None, *extra: str) -> list[str]:
    rows = _qa_rows()
    change(rows)
    (tmp / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _qa_rows()))
    return ["--train_file", str(tmp / "train.jsonl"), "--validation_file", str(tmp / "validation.jsonl"), *extra]


def _set(rows: list[dict], index: int, **values) -> None:
    rows[index].update(values)


QA = [
    BadInput("qa-answer-not-at-offset", "question_answering",
             lambda t, fx: _qa(t, lambda r: r[2]["answers"].update(answer_start=[3])),
             r"train\.jsonl line 3: answer 'Mirta' is not at answer_start 3"),
    BadInput("qa-offset-outside-context", "question_answering",
             lambda t, fx: _qa(t, lambda r: r[1]["answers"].update(answer_start=[500])),
             r"train\.jsonl line 2: answer_start 500 is outside the context \(length 30\)"),
    BadInput("qa-empty-question", "question_answering", lambda t, fx: _qa(t, lambda r: _set(r, 4, question=" ")),
             r"train\.jsonl line 5: empty question"),
    BadInput("qa-duplicate-id", "question_answering", lambda t, fx: _qa(t, lambda r: _set(r, 3, id="q0")),
             r"train\.jsonl line 4: duplicate id 'q0' \(also at .*train\.jsonl line 1\)"),
    BadInput("qa-missing-column", "question_answering",
             lambda t, fx: _qa(t, lambda r: [row.pop("answers") for row in r]),
             r"train\.jsonl: missing column\(s\) \['answers'\]"),
    BadInput("qa-no-answer", "question_answering",
             lambda t, fx: _qa(t, lambda r: r[0]["answers"].update(text=[], answer_start=[])),
             r"train\.jsonl line 1: no answer \(pass --version_2_with_negative"),
    BadInput("qa-broken-json", "question_answering",
             lambda t, fx: ["--train_file", str(_file(t, "train.json", '{"data": [{"title": "t", "paragr'))],
             r"train\.json line 1 column 26: not valid JSON \(Unterminated string\)"),
    BadInput("qa-stride-too-long", "question_answering", lambda t, fx: _qa(t) + ["--doc_stride", "300"],
             r"--doc_stride must be in \(0, max_seq_length / 2\), got 300"),
]


# ------------------------------------------------------------------ translation
def _pairs(n: int = 6) -> list[dict]:
    return [{"translation": {"de": f"das haus {i}", "en": f"the house {i}"}} for i in range(n)]


def _mt(tmp: Path, rows: list[dict] | None = None, langs=("de", "en")) -> list[str]:
    (tmp / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (rows or _pairs())))
    (tmp / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _pairs(3)))
    flags = ["--train_file", str(tmp / "train.jsonl"), "--validation_file", str(tmp / "validation.jsonl")]
    return flags + (["--source_lang", langs[0], "--target_lang", langs[1]] if langs else [])


TRANSLATION = [
    BadInput("mt-tsv-three-columns", "translation",
             lambda t, fx: ["--train_file", str(_file(t, "train.tsv", "das haus\tthe house\nein\tzwei\tdrei\n")),
                            "--source_lang", "de", "--target_lang", "en"],
             r"train\.tsv line 2: expected 2 tab-separated columns \(source, target\), got 3", subprocess=True),
    BadInput("mt-missing-target", "translation",
             lambda t, fx: _mt(t, _pairs(2) + [{"translation": {"de": "hallo"}}]),
             r"train\.jsonl line 3: no 'en' text; found \['de'\]"),
    BadInput("mt-empty-target", "translation",
             lambda t, fx: _mt(t, [{"translation": {"de": "hallo", "en": "  "}}] + _pairs(2)),
             r"train\.jsonl line 1: empty target text"),
    BadInput("mt-no-languages", "translation", lambda t, fx: _mt(t, langs=None),
             r"train\.jsonl: give --source_lang and --target_lang; the first row has \['de', 'en'\]"),
    BadInput("mt-wrong-columns", "translation",
             lambda t, fx: _mt(t, [{"source": "hallo", "target": "hello"}] * 3),
             r"train\.jsonl: expected a 'translation' column \(or columns 'de' and 'en'\); found \['source', "),
    BadInput("mt-same-languages", "translation", lambda t, fx: _mt(t, langs=("de", "de")),
             r"--source_lang and --target_lang are both 'de'"),
]


# ------------------------------------------------------------------ image classification
def _images(tmp: Path, fx: dict, change: Callable[[Path], None] = lambda root: None, *extra: str) -> list[str]:
    root = tiny_image_data(tmp / "shapes", 2, 1)
    change(root)
    return tiny_image_args(fx["vit"], root, tmp / "unused")[:6] + list(extra)  # model, train and validation dirs


def _truncate_jpeg(root: Path) -> None:
    jpeg = root / "train" / "circle" / "000.jpg"
    Image.open(root / "train" / "circle" / "000.png").resize((128, 128)).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:1500])


def _image_table(tmp: Path, fx: dict, rows: list[tuple], validation: list[tuple] | None = None) -> list[str]:
    root = tiny_image_data(tmp / "shapes", 2, 1)
    train = write_csv(root / "train.csv", rows, ("image", "label"))
    valid = write_csv(root / "validation.csv", validation or [("validation/circle/000.png", "circle")],
                      ("image", "label"))
    return ["--model_name_or_path", str(fx["vit"]), "--train_file", str(train), "--validation_file", str(valid)]


IMAGE = [
    BadInput("image-truncated-jpeg", "image_classification", lambda t, fx: _images(t, fx, _truncate_jpeg),
             r"train/circle/000\.jpg: unreadable image \(OSError: .*truncated", subprocess=True),
    BadInput("image-text-named-png", "image_classification",
             lambda t, fx: _images(t, fx, lambda r: (r / "train" / "square" / "001.png").write_text("not a png")),
             r"train/square/001\.png: unreadable image \(UnidentifiedImageError: cannot identify"),
    BadInput("image-zero-bytes", "image_classification",
             lambda t, fx: _images(t, fx, lambda r: (r / "validation" / "stripes" / "000.png").write_bytes(b"")),
             r"validation/stripes/000\.png: unreadable image"),
    BadInput("image-empty-class-folder", "image_classification",
             lambda t, fx: _images(t, fx, lambda r: (r / "train" / "hexagon").mkdir()),
             r"train/hexagon: class folder has no images \(0 other files\)"),
    BadInput("image-unseen-validation-class", "image_classification",
             lambda t, fx: _images(t, fx, lambda r: (r / "validation" / "circle").rename(r / "validation" / "oval")),
             r"validation/oval/000\.png: class 'oval' of --validation_dir has no training folder"),
    BadInput("image-missing-dir", "image_classification",
             lambda t, fx: ["--train_dir", str(t / "nowhere")], r"--train_dir .*nowhere: no such folder"),
    BadInput("image-two-sources", "image_classification",
             lambda t, fx: _images(t, fx) + ["--train_file", str(t / "x.csv")],
             r"give one data source, not \['--train_dir', '--train_file'\]"),
    BadInput("image-table-missing-file", "image_classification",
             lambda t, fx: _image_table(t, fx, [("train/circle/000.png", "circle"), ("nope.png", "square")]),
             r"train\.csv row 1 \(line 3\): image file .*nope\.png not found"),
    BadInput("image-table-unknown-label", "image_classification",
             lambda t, fx: _image_table(t, fx, [("train/circle/000.png", "circle"), ("train/square/000.png", "square")],
                                        [("validation/circle/000.png", "oval")]),
             r"validation\.csv row 0 \(line 2\): unknown label 'oval'"),
    BadInput("image-table-wrong-column", "image_classification",
             lambda t, fx: _image_table(t, fx, [("train/circle/000.png", "circle")]) + ["--image_column", "path"],
             r"train\.csv: missing column\(s\) \['path'\]; found \['image', 'label'\]"),
    BadInput("image-table-empty-path", "image_classification",
             lambda t, fx: _image_table(t, fx, [("train/circle/000.png", "circle"), ("", "square")]),
             r"train\.csv row 1 \(line 3\): empty image path in column 'image'"),
    BadInput("image-bad-crop-scale", "image_classification", lambda t, fx: _images(t, fx, lambda r: None,
                                                                                   "--crop_scale_min", "0"),
             r"--crop_scale_min must be in \(0, 1\], got 0"),
]


# ------------------------------------------------------------------ token classification
def _conll(tmp: Path, fx: dict, train: str = "Ann\tB-PER\nLee\tI-PER\nsings\tO\n\nRome\tB-LOC\n",
           validation: str = "Bob\tB-PER\n") -> list[str]:
    return ["--model_name_or_path", str(fx["bert"]), "--train_file", str(_file(tmp, "train.conll", train)),
            "--validation_file", str(_file(tmp, "validation.conll", validation))]


TOKENS = [
    BadInput("tokens-no-tag", "token_classification", lambda t, fx: _conll(t, fx, "Ann\tB-PER\n\nLee\n"),
             r"train\.conll line 3: no tag \(expected 'token<TAB>tag', got 'Lee'\)", subprocess=True),
    BadInput("tokens-count-mismatch", "token_classification",
             lambda t, fx: _conll(t, fx) + ["--train_file", str(_file(t, "train.jsonl",
                                                                       '{"tokens": ["a", "b"], "tags": ["O"]}\n'))],
             r"train\.jsonl line 1: 2 tokens but 1 tags"),
    BadInput("tokens-unseen-validation-tag", "token_classification",
             lambda t, fx: _conll(t, fx, validation="Bob\tB-PER\nUN\tB-ORG\n"),
             r"validation\.conll line 2: tag 'B-ORG' never occurs in training"),
    BadInput("tokens-empty-file", "token_classification", lambda t, fx: _conll(t, fx, "\n"),
             r"train\.conll: empty file \(no sentences\)"),
    BadInput("tokens-no-scheme", "token_classification", lambda t, fx: _conll(t, fx, "Ann\tPERSON\n"),
             r"train\.conll line 1: tag 'PERSON' fits no tag scheme"),
    BadInput("tokens-stride-too-long", "token_classification", lambda t, fx: _conll(t, fx) + ["--doc_stride", "64"],
             r"--doc_stride must be in \[0, max_seq_length / 2\), got 64"),
]


# ------------------------------------------------------------------ checkpoints and models from elsewhere
CHECKPOINTS = [
    BadInput("resume-other-task", "image_classification",
             lambda t, fx: _images(t, fx) + ["--resume_from_checkpoint", str(fx["text_checkpoint"])],
             r"checkpoint .*step_00000002 was written by task 'text_classification', not 'image_classification'"),
    BadInput("resume-other-head-size", "text_classification",
             lambda t, fx: _text(t, fx, [(f"w{i} x", "abc"[i % 3]) for i in range(12)],
                                 [("w1 x", "a"), ("w2 x", "b"), ("w3 x", "c")])
             + ["--resume_from_checkpoint", str(fx["text_checkpoint"])],
             r"checkpoint .*step_00000002 has a head of 2 labels but the data has 3"),
    BadInput("resume-not-a-checkpoint", "text_classification",
             lambda t, fx: _text(t, fx) + ["--resume_from_checkpoint", str(t)],
             r"--resume_from_checkpoint .*: not a complete checkpoint \(no train_state\.json\)"),
    BadInput("resume-latest-without-checkpoints", "text_classification",
             lambda t, fx: _text(t, fx) + ["--resume_from_checkpoint", "latest", "--output_dir", str(t / "empty")],
             r"--resume_from_checkpoint latest: no run with checkpoints under .*empty"),
    BadInput("resume-corrupt-weights", "image_classification",
             lambda t, fx: _images(t, fx) + ["--resume_from_checkpoint", str(fx["corrupt_checkpoint"])],
             r"checkpoint .*step_00000003.* cannot be loaded"),
    BadInput("model-from-another-task", "image_classification",
             lambda t, fx: _images(t, fx) + ["--model_name_or_path", str(fx["bert"])],
             r"--model_name_or_path .*tiny_bert.*image"),
]

# ------------------------------------------------------------------ recipes, ranges and run folders (any task)
def _recipe(tmp: Path, fx: dict, text: str) -> list[str]:
    return _text(tmp, fx) + ["--config", str(_file(tmp, "recipe.yaml", text))]


SETTINGS = [
    BadInput("recipe-bad-choice", "text_classification", lambda t, fx: _recipe(t, fx, "mixed_precision: fp32\n"),
             r"--config .*recipe\.yaml: argument --mixed_precision/--mixed-precision: invalid choice: 'fp32'"),
    BadInput("recipe-bad-type", "text_classification", lambda t, fx: _recipe(t, fx, "learning_rate: fast\n"),
             r"--config .*recipe\.yaml: argument --learning_rate/--learning-rate: invalid float value: 'fast'"),
    BadInput("recipe-out-of-range", "text_classification", lambda t, fx: _recipe(t, fx, "adam_beta2: 1.5\n"),
             r"--adam_beta2 must be in \[0, 1\), got 1\.5"),
    BadInput("option-nan", "text_classification", lambda t, fx: _text(t, fx) + ["--learning_rate", "nan"],
             r"--learning_rate must be a finite number, got nan"),
    BadInput("save-total-limit-zero", "text_classification", lambda t, fx: _text(t, fx) + ["--save_total_limit", "0"],
             r"--save_total_limit must be in \[1, inf\), got 0 \(use --save_strategy no", subprocess=True),
    BadInput("run-folder-holds-a-run", "text_classification",
             lambda t, fx: _text(t, fx) + ["--output_dir", str(fx["text_checkpoint"].parents[2])],
             r"text/run already holds a run \(config\.yaml, metrics\.jsonl, results\.json, train_state\.json, "
             r"checkpoints\); choose another --run_name, .* or pass --overwrite_output_dir"),
    BadInput("resume-changed-batch-size", "text_classification",
             lambda t, fx: _text(t, fx) + ["--resume_from_checkpoint", str(fx["text_checkpoint"])],
             r"step_00000002 was written with per_device_train_batch_size = 16, this run has 32 .*"
             r"--ignore_resume_mismatch"),
]

# Paths that leave their data folder and label files: tests/e2e/test_bad_input_paths.py; decoding and shapes
# of every reader: tests/e2e/test_bad_input_readers.py.
CASES = TEXT + QA + TRANSLATION + IMAGE + DETECTION + SEGMENTATION + TOKENS + CHECKPOINTS + SETTINGS


def test_the_table_is_wide_enough():
    assert len(CASES) >= 30 and len({case.id for case in CASES}) == len(CASES)
    assert {case.task for case in CASES} == set(list_tasks())  # every task has rows


@pytest.fixture(scope="module")
def fx(tiny_bert_dir, tmp_path_factory) -> dict:
    """Tiny models and finished checkpoints the rows point at."""
    from accelerate.state import AcceleratorState, GradientState

    root = tmp_path_factory.mktemp("bad_input_fixtures")
    train, validation = write_csv(root / "t.csv", toy_reviews(32, 1)), write_csv(root / "v.csv", toy_reviews(8, 2))
    main("text_classification", tiny_text_args(tiny_bert_dir, train, validation, root / "text", "--num_train_epochs",
                                               "1", "--save_strategy", "epoch", "--eval_strategy", "no"))
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    vit, shapes = tiny_vit_dir(root / "vit"), tiny_image_data(root / "shapes", 8, 1)
    main("image_classification", tiny_image_args(vit, shapes, root / "image", "--num_train_epochs", "1",
                                                 "--save_strategy", "epoch", "--eval_strategy", "no"))
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    corrupt = root / "image" / "run" / "checkpoints" / "step_00000003"
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return {"bert": tiny_bert_dir, "vit": vit,
            "text_checkpoint": root / "text" / "run" / "checkpoints" / "step_00000002",
            "corrupt_checkpoint": corrupt}


def _checkpoints(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("checkpoints/*"))


def _run_files(root: Path) -> dict:
    """Every checkpoint folder and every config.yaml under root, with the config's text."""
    return {**{name: None for name in _checkpoints(root)},
            **{str(p.relative_to(root)): p.read_text() for p in root.rglob("config.yaml")}}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_stops_with_one_clear_line_and_nothing_to_resume(case, fx, tmp_path, capsys):
    flags = case.make(tmp_path, fx)
    out = tmp_path / "out"
    if "--output_dir" not in flags:
        flags += ["--output_dir", str(out)]
    flags += ["--mixed_precision", "no"] * ("--mixed_precision" not in flags) + ["--run_name", "run"] * (
        "--resume_from_checkpoint" not in flags)
    before = _run_files(fx["text_checkpoint"].parents[2].parent)
    with pytest.raises(SystemExit) as stop:
        main(case.task, flags)
    assert stop.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(case.expect, err), err[-2000:]

    # Nothing a resume would pick up: no checkpoint here, and the finished runs the rows use are untouched.
    assert not _checkpoints(tmp_path) and CheckpointManager(out / "run", 1).latest() is None
    assert _run_files(fx["text_checkpoint"].parents[2].parent) == before
    with pytest.raises(SystemExit):
        main(case.task, ["--output_dir", str(out), "--resume_from_checkpoint", "latest"])
    assert "no run with checkpoints under" in capsys.readouterr().err

    if case.subprocess:  # the script itself, as a user runs it: a non-zero exit and the same line
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
               "PYTHONPATH": str(ROOT)}
        result = subprocess.run([sys.executable, str(ROOT / "tasks" / case.task / "train.py"), *flags], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode != 0 and re.search(case.expect, result.stderr), result.stderr[-2000:]
        assert "Traceback" not in result.stderr
