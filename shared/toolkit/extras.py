"""Optional dependencies: import one, or stop with one line naming the extra that installs it."""
from __future__ import annotations

import importlib
from types import ModuleType

from shared.toolkit.config import ConfigError

# The package behind each --report_to tracker, and the project extra that brings it (None: not in any extra).
TRACKER_PACKAGES: dict[str, tuple[str, str | None]] = {
    "tensorboard": ("tensorboard", "tracking"), "wandb": ("wandb", None), "trackio": ("trackio", None),
    "mlflow": ("mlflow", None), "comet_ml": ("comet_ml", None), "aim": ("aim", None),
    "clearml": ("clearml", None), "dvclive": ("dvclive", None), "swanlab": ("swanlab", None),
}


class MissingExtra(ConfigError):
    """An optional package a requested feature needs is not installed."""


def install_hint(package: str, extra: str | None) -> str:
    return f'pip install -e ".[{extra}]"' if extra else f"pip install {package}"


def require(module: str, extra: str | None, feature: str) -> ModuleType:
    """`module`, imported; MissingExtra naming `feature` and the install command when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = err.name or module
        raise MissingExtra(f"{feature} needs the optional package {missing!r}, which is not installed: "
                           f"{install_hint(module, extra)}") from None


def check_trackers(report_to: str) -> None:
    """Every tracker named in --report_to importable (accelerate otherwise fails deep inside its setup)."""
    names = [] if report_to in ("none", "") else report_to.split(",")
    if names == ["all"]:
        return  # accelerate picks whichever trackers are installed
    for name in names:
        package, extra = TRACKER_PACKAGES.get(name.strip(), (name.strip(), None))
        require(package, extra, f"--report_to {name.strip()}")
