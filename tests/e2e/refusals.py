"""The check behind tests/e2e/test_bad_input_readers.py and test_bad_input_paths.py: a bad input, given to the real
command-line entry (`shared.toolkit.cli.main`), ends with exit 2, exactly one `error: ` line matching what the case
expects and no traceback, before any training step (no checkpoint, nothing `--resume_from_checkpoint latest` picks).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.toolkit.cli import main
from shared.training.checkpoint import CheckpointManager
from tests.e2e.bad_box_and_mask_inputs import BadInput as Case  # id, task, make(tmp, fx) -> flags, expect, subprocess

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def refusal_line(capsys, entry, *args) -> tuple[str, str]:
    """`entry(*args)` refuses in this process: exit 2, exactly one `error: ` line, no traceback.
    Returns (that line, all of stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        entry(*args)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert stop.value.code == 2 and len(errors) == 1 and "Traceback" not in err, err[-3000:]
    return errors[0], err


def assert_refused(case: Case, fx: dict, tmp_path: Path, capsys) -> str:
    """Run the case through the CLI (and, when asked, train.py in a subprocess); return the error line."""
    flags = case.make(tmp_path, fx)
    out = tmp_path / "out"
    flags += ["--output_dir", str(out), "--run_name", "run", "--mixed_precision", "no"]
    line, err = refusal_line(capsys, main, case.task, flags)
    assert re.search(case.expect, line), err[-3000:]
    assert not list(tmp_path.rglob("checkpoints/*")) and CheckpointManager(out / "run", 1).latest() is None
    if case.subprocess:  # the script itself, as a user runs it
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
               "PYTHONPATH": str(ROOT)}
        result = subprocess.run([sys.executable, str(ROOT / "tasks" / case.task / "train.py"), *flags], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
        assert re.search(case.expect, result.stderr), result.stderr[-3000:]
    return line
