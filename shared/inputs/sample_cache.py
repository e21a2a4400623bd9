"""Embedded sample datasets: drawn once per machine into the cache, safely under concurrent first use."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from filelock import FileLock

from shared.toolkit.models import cache_dir


def cached_sample(name: str, version: str, write: Callable[[Path], object], marker: str = "validation") -> Path:
    """`<cache>/data/<name>/<version>`, written by `write(folder)` on first use; complete once `marker` exists."""
    target = cache_dir() / "data" / name / version
    if (target / marker).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # one writer per machine; others wait, then reuse. Drawn beside the target, then renamed (atomic).
    with FileLock(str(target) + ".lock"):
        if not (target / marker).exists():
            work = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
            try:
                write(work / "data")
                shutil.rmtree(target, ignore_errors=True)  # an incomplete copy left by hand
                os.replace(work / "data", target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return target
