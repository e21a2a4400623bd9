"""benchmarks/predict_speed.py and predict_memory.py --images on tiny inputs: the inputs each task gets, the
settings the pipeline side takes from a run's config.yaml, the agreement check, and real rows from real runs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from benchmarks import predict_memory, predict_speed
from benchmarks.predict_tasks import TASKS, agreement, pipeline_settings, write_inputs
from shared.inputs.data import benchmark_data_dir

needs_data = pytest.mark.skipif(not (benchmark_data_dir() / "text_classification").is_dir(),
                                reason="the benchmark data (../shared/data) is not beside this checkout")


def _units(task: str, path: Path) -> int:
    """How many inputs predict.py would read from what write_inputs wrote."""
    if path.is_dir():
        images = sorted(path.iterdir())
        assert all(p.is_symlink() and p.resolve().is_file() for p in images)
        assert len({p.name for p in images}) == len(images)
        return len(images)
    if path.suffix == ".csv":
        return len(list(csv.DictReader(path.open())))
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in lines]
        assert all("answers" not in r and "tags" not in r for r in rows)  # unlabelled, as a user's new inputs
        return len(rows)
    return len(lines)


@needs_data
@pytest.mark.parametrize("task", TASKS)
def test_inputs_are_the_asked_count_of_unlabelled_rows_cycling_past_the_data(task, tmp_path):
    assert _units(task, write_inputs(task, 3, tmp_path / "small")) == 3
    # more than the 40 raccoon validation images (or 101 CamVid, ...): the data starts over, names stay distinct
    assert _units(task, write_inputs(task, 120, tmp_path / "large")) == 120


def test_pipeline_settings_follow_the_runs_config_beside_the_model(tmp_path):
    (tmp_path / "best").mkdir()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"num_beams": 2, "max_source_length": 64,
                                                          "max_target_length": 40, "max_seq_length": 256,
                                                          "doc_stride": 64, "n_best_size": 5, "max_answer_length": 12}))
    assert pipeline_settings("translation", tmp_path / "best", 32) == {
        "batch_size": 32, "num_beams": 2, "max_source_length": 64, "max_length": 40}
    assert pipeline_settings("question_answering", tmp_path / "best", 8) == {
        "batch_size": 8, "max_seq_len": 256, "doc_stride": 64, "max_answer_len": 12, "n_best": 5}
    assert pipeline_settings("text_classification", tmp_path / "best", 32)["max_length"] == 256
    assert pipeline_settings("object_detection", tmp_path / "best", 32)["threshold"] == 0.0


def test_agreement_counts_equal_units_and_flags_a_short_output(tmp_path):
    ours, theirs, short = tmp_path / "a.conll", tmp_path / "b.conll", tmp_path / "c.conll"
    ours.write_text("Anna\tB-PER\nlives\tO\n\nin\tO\nRome\tB-LOC\n\n")
    theirs.write_text("Anna\tB-PER\nlives\tO\n\nin\tO\nRome\tO\n\n")
    short.write_text("Anna\tB-PER\n\n")
    assert agreement("token_classification", ours, theirs) == (4, 4, 0.75)
    assert agreement("token_classification", ours, short) == (4, 1, 0.0)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("text,label\nx,positive\ny,negative\n")
    b.write_text("text,label\nx,positive\ny,positive\n")
    assert agreement("text_classification", a, b) == (2, 2, 0.5)


def _tiny_text_model(tokenizer_dir: Path, out: Path) -> Path:
    """A 2-layer, 32-wide BERT on the tiny vocabulary, with positions for predict.py's 128 tokens, two named labels."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, id2label={0: "negative", 1: "positive"},
                        label2id={"negative": 0, "positive": 1})
    BertForSequenceClassification(config).save_pretrained(out)
    return out


@needs_data
@pytest.mark.slow
def test_speed_dry_run_writes_measured_rows_for_both_sides(tiny_bert_dir, tmp_path):
    model = _tiny_text_model(tiny_bert_dir, tmp_path / "models" / "best")
    result_path = tmp_path / "result.json"
    assert predict_speed.main(["--dry_run", "--tasks", "text_classification", "--model",
                               f"text_classification={model}", "--result", str(result_path)]) == result_path
    result = json.loads(result_path.read_text())
    rows = result["rows"]
    assert sorted(r["side"] for r in rows) == ["pipeline", "predict.py"]
    for row in rows:
        assert row["inputs"] == 8 and row["model"] == str(model)
        assert 0 < row["loop_seconds"] < row["wall_seconds"] and row["peak_rss_mb"] > 100
        # loop_seconds is rounded to the millisecond: the rate agrees with it to that rounding
        assert 8 / row["rows_per_second"] == pytest.approx(row["loop_seconds"], abs=6e-4)
    (line,) = result["summary"]
    rates = {r["side"]: r["rows_per_second"] for r in rows}
    assert line["predict.py rows/s"] == rates["predict.py"] and line["pipeline rows/s"] == rates["pipeline"]
    assert line["ratio"] == pytest.approx(rates["predict.py"] / rates["pipeline"], abs=1e-3)
    assert line["units_written"] == [8, 8] and line["agreement"] >= 0.875  # the same model: the same labels
    assert "| text_classification | 8 |" in result_path.with_suffix(".md").read_text()


@pytest.mark.slow
def test_image_memory_mode_predicts_every_generated_image_in_a_fresh_process(tmp_path):
    result_path = tmp_path / "memory.json"
    predict_memory.main(["--images", "6", "40", "--result", str(result_path)])
    result = json.loads(result_path.read_text())
    assert [(r["images"], r["rows_written"]) for r in result["memory"]] == [(6, 6), (40, 40)]
    assert all(r["peak_rss_mb"] > 100 and 0 < r["loop_seconds"] < r["wall_seconds"] for r in result["memory"])
    first, last = result["memory"][0]["peak_rss_mb"], result["memory"][-1]["peak_rss_mb"]
    assert result["peak_rss_ratio_last_to_first"] == round(last / first, 3)
