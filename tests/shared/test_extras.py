"""A missing optional dependency gives one line naming the extra to install, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.toolkit.extras import MissingExtra, check_trackers, require

ROOT = Path(__file__).resolve().parents[2]


def _run_without(blocked: list[str], entry: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run a script (path) or module (-m name) with `blocked` made unimportable, as on an install without them."""
    run = (f"runpy.run_module({entry[3:]!r}, run_name='__main__', alter_sys=True)" if entry.startswith("-m ")
           else f"runpy.run_path({entry!r}, run_name='__main__')")
    code = (f"import runpy, sys\nfor name in {blocked!r}: sys.modules[name] = None\n"
            f"sys.argv = [{entry!r}, *{argv!r}]\n{run}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_require_names_the_extra():
    with pytest.raises(MissingExtra, match=r"--frobnicate needs the optional package 'no_such_pkg_xyz'.*"
                                           r'pip install -e "\.\[tune\]"'):
        require("no_such_pkg_xyz", "tune", "--frobnicate")
    assert require("json", "tune", "x").__name__ == "json"


def test_unknown_tracker_package_gets_a_pip_line():
    with pytest.raises(MissingExtra, match="pip install no_such_tracker_xyz"):
        check_trackers("no_such_tracker_xyz")
    check_trackers("none")  # nothing asked, nothing checked


CASES = {
    "demo": (["gradio"], "apps/text_classification.py", ["--model", "nowhere"], ".[demo]"),
    "launcher": (["gradio"], "-m apps", ["--models_dir", "nowhere"], ".[demo]"),
    "tuning": (["optuna"], "tasks/text_classification/train.py", ["--hpo_trials", "2"], ".[tune]"),
    "tracker": (["tensorboard", "tensorboardX"], "tasks/text_classification/train.py",
                ["--report_to", "tensorboard"], ".[tracking]"),
    "onnx export": (["onnxruntime"], "-m tasks.export", ["nowhere", "--onnx"], ".[export]"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_entry_point_without_its_extra_says_which_to_install(case):
    blocked, entry, argv, extra = CASES[case]
    result = _run_without(blocked, entry, argv)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f'pip install -e "{extra}"' in line and blocked[0] in line
