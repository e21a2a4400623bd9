"""Resume is safe: no checkpoint file runs code, a changed setting or a reused run folder is refused, damaged
state falls back or stops with one line, and no checkpoint or export ever holds non-finite weights."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from shared.training.checkpoint import OBJECT_TENSORS, OBJECTS_FILE, _decode
from shared.toolkit.cli import main
from tests.helpers import tiny_text_args, toy_reviews, write_csv

# 96 rows, batch 16: 6 steps per epoch, 12 in all; checkpoints at steps 5 and 10 (mid-epoch), EMA on.
RUN = ["--num_train_epochs", "2", "--save_strategy", "steps", "--save_steps", "5", "--save_total_limit", "10",
       "--ema_decay", "0.9", "--eval_strategy", "epoch"]


class Payload:
    """Unpickling this runs code: it creates the file `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety_data")
    return write_csv(root / "train.csv", toy_reviews(96, 1)), write_csv(root / "validation.csv", toy_reviews(30, 2))


@pytest.fixture(scope="module")
def finished(tiny_bert_dir, data, tmp_path_factory):
    """An unbroken run with checkpoints at steps 5 and 10."""
    out = tmp_path_factory.mktemp("safety_reference")
    main("text_classification", tiny_text_args(tiny_bert_dir, *data, out, *RUN))
    return out / "run"


def _broken(finished, tmp_path):
    """A copy of the finished run as a run killed after step 10 would leave it: checkpoints and metrics only."""
    run = tmp_path / "out" / "run"
    shutil.copytree(finished / "checkpoints", run / "checkpoints")
    for name in ("metrics.jsonl", "train_state.json", "config.yaml"):
        shutil.copy(finished / name, run / name)
    return run


def _resume(tiny_bert_dir, data, tmp_path, *extra):
    return main("text_classification", tiny_text_args(tiny_bert_dir, *data, tmp_path / "out", *RUN,
                                                      "--resume_from_checkpoint", "latest", *extra))


def _same_weights(a, b) -> bool:
    x, y = load_file(str(a / "last" / "model.safetensors")), load_file(str(b / "last" / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _stops(code, call, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        call()
    err = capsys.readouterr().err
    assert stop.value.code == code, err
    assert "Traceback" not in err
    return err


def test_resume_state_is_json_and_safetensors_and_resumes_exactly(tiny_bert_dir, data, finished, tmp_path):
    checkpoint = finished / "checkpoints" / "step_00000010"
    assert not list(checkpoint.glob("custom_checkpoint_*"))  # accelerate's pickled custom objects
    assert set(json.loads((checkpoint / OBJECTS_FILE).read_text())) == {"scheduler", "ema"}
    run = _broken(finished, tmp_path)
    _resume(tiny_bert_dir, data, tmp_path)
    assert _same_weights(finished, run)


def _to_legacy(checkpoint, change=None):
    """Rewrite a checkpoint as the previous version wrote it: accelerate's custom_checkpoint_<i>.pkl files."""
    tensors = load_file(str(checkpoint / OBJECT_TENSORS))
    states = {k: _decode(v, tensors) for k, v in json.loads((checkpoint / OBJECTS_FILE).read_text()).items()}
    for index, name in enumerate(["scheduler", "ema"]):
        torch.save(change(states[name]) if change else states[name], checkpoint / f"custom_checkpoint_{index}.pkl")
    (checkpoint / OBJECTS_FILE).unlink()
    (checkpoint / OBJECT_TENSORS).unlink()


def test_a_checkpoint_of_the_previous_version_resumes_exactly_without_unpickling_code(tiny_bert_dir, data, finished,
                                                                                      tmp_path):
    run = _broken(finished, tmp_path)
    _to_legacy(run / "checkpoints" / "step_00000010")
    _resume(tiny_bert_dir, data, tmp_path)
    assert _same_weights(finished, run)


@pytest.mark.parametrize("victim", ["custom_checkpoint_0.pkl", "optimizer.bin", "random_states_0.pkl"])
def test_a_planted_pickle_payload_is_never_run(tiny_bert_dir, data, finished, tmp_path, capsys, victim):
    run, marker = _broken(finished, tmp_path), tmp_path / "payload_ran"
    checkpoint = run / "checkpoints" / "step_00000010"
    if victim.startswith("custom_checkpoint"):  # an old-format checkpoint from elsewhere
        _to_legacy(checkpoint, change=lambda state: {**state, "payload": Payload(marker)})
    else:
        torch.save({"state": {}, "payload": Payload(marker)}, checkpoint / victim)
    err = _stops(2, lambda: _resume(tiny_bert_dir, data, tmp_path), capsys)
    assert not marker.exists()
    assert "step_00000010" in err and victim in err or "cannot be loaded" in err, err


def test_an_int8_export_loads_without_unpickling_code(finished, tmp_path):
    from shared.serving.export import load_quantized

    run, marker = tmp_path / "run", tmp_path / "payload_ran"
    shutil.copytree(finished / "best", run / "best")
    shutil.copy(finished / "config.yaml", run / "config.yaml")
    (run / "best" / "export").mkdir()
    torch.save({"payload": Payload(marker)}, run / "best" / "export" / "model_int8.pt")
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        load_quantized(run / "best", "text_classification")
    assert not marker.exists()


@pytest.mark.parametrize("flags, setting", [
    (["--per_device_train_batch_size", "8"], "per_device_train_batch_size = 16, this run has 8"),
    (["--gradient_accumulation_steps", "2"], "gradient_accumulation_steps = 1, this run has 2"),
    (["--seed", "1"], "seed = 0, this run has 1"),
    (["--num_train_epochs", "3"], "num_train_epochs = 2.0, this run has 3.0"),
    (["--max_train_samples", "80"], "max_train_samples = None, this run has 80"),
], ids=["batch", "accumulation", "seed", "epochs", "rows"])
def test_resume_under_a_changed_setting_is_refused_naming_it(tiny_bert_dir, data, finished, tmp_path, capsys, flags,
                                                             setting):
    _broken(finished, tmp_path)
    err = _stops(2, lambda: _resume(tiny_bert_dir, data, tmp_path, *flags), capsys)
    assert f"step_00000010 was written with {setting}" in err and "--ignore_resume_mismatch" in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1


def test_changed_data_or_model_is_refused_and_ignore_flag_continues_inexactly(tiny_bert_dir, data, finished, tmp_path,
                                                                               capsys):
    run = _broken(finished, tmp_path)
    edited = tmp_path / "data"
    edited.mkdir()
    train = write_csv(edited / "train.csv", toy_reviews(96, 7))  # same size, other rows
    args = tiny_text_args(tiny_bert_dir, train, data[1], tmp_path / "out", *RUN, "--resume_from_checkpoint", "latest")
    err = _stops(2, lambda: main("text_classification", args), capsys)
    assert "was written with train_file contents = " in err
    other_model = shutil.copytree(tiny_bert_dir, tmp_path / "model_copy")
    err = _stops(2, lambda: _resume(other_model, data, tmp_path), capsys)
    assert "was written with model_name_or_path = " in err and "model_copy" in err
    _resume(tiny_bert_dir, data, tmp_path, "--seed", "1", "--ignore_resume_mismatch")
    out = capsys.readouterr().out
    assert "seed = 0, this run has 1; resuming anyway (--ignore_resume_mismatch)" in out
    assert (run / "last" / "model.safetensors").exists()


def test_a_second_run_in_the_same_run_folder_is_refused_unless_overwritten(tiny_bert_dir, data, tmp_path, capsys):
    args = tiny_text_args(tiny_bert_dir, *data, tmp_path / "out", "--num_train_epochs", "1", "--save_strategy",
                          "epoch", "--eval_strategy", "no")
    main("text_classification", args)
    run = tmp_path / "out" / "run"
    before = (run / "metrics.jsonl").read_text()
    err = _stops(2, lambda: main("text_classification", args), capsys)
    assert f"{run} already holds a run (config.yaml, metrics.jsonl, results.json, train_state.json, checkpoints)" in err
    assert (run / "metrics.jsonl").read_text() == before
    main("text_classification", [*args, "--overwrite_output_dir", "--seed", "3"])
    assert (run / "metrics.jsonl").read_text() != before
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000006"]


def test_a_truncated_train_state_falls_back_to_the_previous_checkpoint(tiny_bert_dir, data, finished, tmp_path,
                                                                       capsys):
    run = _broken(finished, tmp_path)
    state = run / "checkpoints" / "step_00000010" / "train_state.json"
    state.write_text(state.read_text()[:40])
    _resume(tiny_bert_dir, data, tmp_path)
    out = capsys.readouterr().out
    assert f"warning: {state} is damaged (JSONDecodeError" in out and "falling back" in out
    assert "step_00000005, the newest complete checkpoint there" in out
    assert _same_weights(finished, run)
    state.write_text(state.read_text()[:40])  # the resumed run wrote step 10 anew
    err = _stops(2, lambda: main("text_classification", tiny_text_args(
        tiny_bert_dir, *data, tmp_path / "out", *RUN, "--resume_from_checkpoint", str(state.parent))), capsys)
    assert f"{state} is damaged" in err


def test_a_torn_metrics_line_and_a_run_folder_given_as_checkpoint_resume(tiny_bert_dir, data, finished, tmp_path):
    run = _broken(finished, tmp_path)
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 11, "epoch": 1.8, "train/lo')  # what a crash mid-write leaves
    main("text_classification", tiny_text_args(tiny_bert_dir, *data, tmp_path / "out", *RUN,
                                               "--resume_from_checkpoint", str(run)))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == sorted(r["step"] for r in records)
    assert _same_weights(finished, run)


def test_a_non_finite_update_reaches_no_checkpoint_and_no_export(tiny_bert_dir, data, tmp_path, capsys):
    """lr 1e39 overflows the first update itself while its loss is finite: a loss check alone saves that step."""
    args = tiny_text_args(tiny_bert_dir, *data, tmp_path / "out", "--learning_rate", "1e39", "--max_grad_norm", "0",
                          "--logging_steps", "50", "--save_strategy", "steps", "--save_steps", "1", "--eval_strategy",
                          "steps", "--eval_steps", "1")
    err = _stops(3, lambda: main("text_classification", args), capsys)
    assert "weights became non-finite (nan or inf) at optimizer step 1" in err
    run = tmp_path / "out" / "run"
    assert not list(run.glob("checkpoints/step_*"))
    assert not (run / "best").exists() and not (run / "last").exists()
