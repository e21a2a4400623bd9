"""What exact resume depends on: the settings a checkpoint records, and refusing a run that changed them."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import sys
from pathlib import Path

from shared.toolkit.config import ConfigError

# Options that decide the data order, the batches or the schedule: changing one makes a resumed run
# differ from the run it continues (the task, head size and data rows are checked too).
ORDER_OPTIONS = ("per_device_train_batch_size", "gradient_accumulation_steps", "seed", "num_train_epochs",
                 "max_train_steps", "group_by_length", "weighted_sampler", "dataset_name", "dataset_config_name",
                 "max_train_samples", "validation_split", "use_peft", "model_name_or_path")
HASHED_BYTES = 64 * 2**20  # files larger than this are fingerprinted by size only


def _path_key(value: str) -> str:
    return str(Path(value).resolve()) if Path(value).exists() else value


def fingerprint(path: Path) -> str:
    """A short content hash of a data file, or of a folder's file names and sizes (images are not read)."""
    digest = hashlib.sha256()
    if path.is_file():
        size = path.stat().st_size
        digest.update(str(size).encode())
        if size <= HASHED_BYTES:
            digest.update(path.read_bytes())
    else:
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{item.relative_to(path)}\0{item.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def resume_settings(cfg, num_processes: int, total_steps: int, train_rows: int) -> dict:
    """The settings a checkpoint records: the order options, the process count, the step plan, the number
    of training rows, and a fingerprint of every local data file or folder option (`*_file`, `*_dir`)."""
    values = vars(cfg)  # every TrainConfig field, and the task's own
    settings = {name: values[name] for name in ORDER_OPTIONS}
    settings["model_name_or_path"] = _path_key(cfg.model_name_or_path)
    settings.update(num_processes=num_processes, total_steps=total_steps, train_rows=train_rows)
    for option in dataclasses.fields(cfg):
        value = values[option.name]
        if option.name.endswith(("_file", "_dir")) and option.name != "output_dir" and isinstance(value, str) \
                and Path(value).exists():
            settings[f"{option.name} contents"] = fingerprint(Path(value))
    return settings


def check_settings(recorded: dict, current: dict, path: Path, ignore: bool, log) -> None:
    """Refuse to resume under settings that change the data order or schedule, naming the first one."""
    if not recorded:
        log(f"warning: checkpoint {path} records no run settings (an older version wrote it); "
            "exact resume cannot be checked")
        return
    current = json.loads(json.dumps(current, default=str))  # compare as the checkpoint stored them
    changed = [k for k, v in current.items() if recorded.get(k, v) != v or (k not in recorded and " " in k)]
    changed += [k for k in recorded if k not in current]  # a data option given then, not now
    if not changed:
        return
    first, more = changed[0], (f" (also changed: {', '.join(changed[1:])})" if changed[1:] else "")
    what = (f"checkpoint {path} was written with {first} = {recorded.get(first)!r}, this run has "
            f"{current.get(first)!r}{more}")
    if ignore:
        log(f"warning: {what}; resuming anyway (--ignore_resume_mismatch): the run no longer continues exactly")
        return
    raise ConfigError(f"{what}; exact resume needs the same value. Use the same setting, start a new run, "
                      "or pass --ignore_resume_mismatch to continue inexactly")


def resume_command(checkpoint: Path) -> str:
    """This process's command line with --resume_from_checkpoint set to `checkpoint`."""
    args, kept, skip = sys.argv[1:], [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--resume_from_checkpoint":
            skip = True
        elif not arg.startswith("--resume_from_checkpoint="):
            kept.append(arg)
    program = [Path(sys.executable).name, sys.argv[0]] if sys.argv[0].endswith(".py") else [sys.argv[0]]
    return shlex.join([*program, *kept, "--resume_from_checkpoint", str(checkpoint)])
