"""--push_to_hub: check that the Hub can be reached before training, and upload a saved model after it."""
from __future__ import annotations

from pathlib import Path

from shared.toolkit.config import ConfigError


def check_hub_reachable() -> None:
    """ConfigError (the entry point's one `error: ` line, exit 2) when nothing could be pushed, before training."""
    from huggingface_hub import HfApi, constants
    if constants.HF_HUB_OFFLINE:
        raise ConfigError("--push_to_hub: HF_HUB_OFFLINE is set, so nothing can be pushed; unset it or drop the flag")
    try:
        HfApi().whoami()
    except Exception as err:  # network or auth: either way, stop before training
        reason = next(iter(str(err).splitlines()), "") or type(err).__name__  # HTTP errors span lines: one line
        raise ConfigError(f"--push_to_hub: cannot reach the Hub or not logged in ({reason}); run `hf auth login` "
                          "or drop the flag") from err


def push_folder(folder: Path, repo_id: str) -> None:
    from huggingface_hub import HfApi
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id)
