"""One refusal mechanism for every entry point: shared.toolkit.cli.entry_point turns a ConfigError or DataError
(DemoError is one) into one `error: ` line on stderr and exit 2. tests/e2e/test_cli_errors.py drives each entry
point as a subprocess; these tests pin the in-process behaviour of the demos, which used to leave through
`SystemExit("error: ...")` (exit 1, multi-line messages) and an argparse usage dump for a bad flag.
"""
from __future__ import annotations

import socket

import pytest

from shared.serving import demo, export, hub
from shared.toolkit import cli
from tests.e2e.refusals import refusal_line
from tests.helpers import tiny_text_args


def _refusal(capsys, entry, *args) -> str:
    error, err = refusal_line(capsys, entry, *args)
    assert all(line.startswith(("error: ", "note: ")) for line in err.splitlines()), err  # nothing else, no usage
    return error


def test_every_entry_point_refuses_through_the_one_mechanism():
    entries = [cli.main, cli.predict_main, demo.main, demo.serve_all, export.main]
    assert all(getattr(entry, "__wrapped__", None) is not None for entry in entries)  # functools.wraps of entry_point
    assert not hasattr(cli, "exit_2_on_refusal")
    assert issubclass(demo.DemoError, cli.ConfigError)


@pytest.mark.parametrize("argv, expect", [
    (["--model", "{tmp}/missing/best"], "--model {tmp}/missing/best: no such model folder; train a model with "
                                        "`accelerate launch tasks/text_classification/train.py`"),
    (["--model", "{tmp}"], "--model {tmp}: not a saved model (no config.json)"),
    (["--models_dir", "{tmp}"], "no trained text_classification model under {tmp}/text_classification/ (looked for "
                                "<run>/best/); train one first with `accelerate launch tasks/text_classification/"),
    (["--port", "many"], "argument --port: invalid int value: 'many'; see --help"),
    (["--modle", "x"], "unrecognized arguments: --modle x; see --help"),
])
def test_a_demo_refusal_is_one_error_line_and_exit_2(argv, expect, tmp_path, capsys):
    line = _refusal(capsys, demo.main, "text_classification", [a.format(tmp=tmp_path) for a in argv])
    assert expect.format(tmp=tmp_path) in line, line


def test_the_launcher_lists_each_task_as_a_note_then_one_error_line(tmp_path, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        demo.serve_all(["--models_dir", str(tmp_path)])
    err = capsys.readouterr().err.splitlines()
    assert stop.value.code == 2 and err[-1] == (f"error: no model under {tmp_path}/<task>/<run>/best could be "
                                                "served (see the notes above)")
    assert "note: text_classification: not trained yet; `accelerate launch tasks/text_classification/train.py`" in err
    assert all(line.startswith("note: ") for line in err[:-1]) and len(err) > 2


def test_a_port_in_use_is_a_refusal_not_a_traceback(capsys):
    with demo.gr.Blocks() as app:
        demo.gr.Markdown("a page")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(demo.DemoError, match=rf"--host 127\.0\.0\.1 --port {port}: cannot serve there"):
            demo.launch(app, port=port, block=False)


def test_export_refuses_through_the_one_mechanism(tmp_path, monkeypatch, capsys):
    """export.py's main is wrapped by entry_point like the others (it had its own try/except): a DataError raised
    while exporting is one line and exit 2, with nothing else on stderr."""
    def unreadable(*args, **kwargs):
        raise cli.DataError(f"{tmp_path}/validation.csv line 3: not UTF-8 text")

    monkeypatch.setattr(export, "export", unreadable)
    line = _refusal(capsys, export.main, [str(tmp_path)])
    assert line == f"error: {tmp_path}/validation.csv line 3: not UTF-8 text"


@pytest.mark.parametrize("offline, expect", [
    (True, "--push_to_hub: HF_HUB_OFFLINE is set, so nothing can be pushed; unset it or drop the flag"),
    (False, "--push_to_hub: cannot reach the Hub or not logged in (no network here); run `hf auth login`"),
])
def test_push_to_hub_that_cannot_push_is_a_config_refusal(offline, expect, monkeypatch):
    import huggingface_hub

    def no_network(self):
        raise OSError("no network here\n(a second line of detail)")

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", no_network)
    with pytest.raises(cli.ConfigError) as refused:
        hub.check_hub_reachable()
    assert str(refused.value).startswith(expect), refused.value


def test_push_to_hub_offline_ends_train_with_one_error_line(tiny_bert_dir, toy_text_files, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    args = tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "a", "--push_to_hub", "--hub_model_id", "me/m")
    line = _refusal(capsys, cli.main, "text_classification", args)
    assert line == "error: --push_to_hub: HF_HUB_OFFLINE is set, so nothing can be pushed; unset it or drop the flag"
    assert not (tmp_path / "a" / "run" / "metrics.jsonl").exists()
