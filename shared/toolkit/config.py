"""Config dataclasses turned into CLI flags (HfArgumentParser), with YAML recipes underneath."""
from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import yaml
from transformers import HfArgumentParser


class ConfigError(ValueError):
    """A flag or recipe value that cannot work; raised before any data is read."""


@dataclass
class TrainConfig:
    """Options every task shares. Tasks subclass this and change defaults or add fields."""

    config: Optional[str] = field(default=None, metadata={"help": "YAML recipe; flags on the command line override it."})
    # model
    model_name_or_path: str = field(default="minilm", metadata={"help": "Hub id, local dir, or packaged backbone short name."})
    # data
    dataset_name: Optional[str] = field(default=None, metadata={"help": "Hub dataset (online users)."})
    dataset_config_name: Optional[str] = None
    train_file: Optional[str] = field(default=None, metadata={"help": "Local training file or folder."})
    validation_file: Optional[str] = field(default=None, metadata={"help": "Local validation file or folder."})
    validation_split: float = field(default=0.1, metadata={"help": "Fraction of train held out when no validation data is given."})
    test_file: Optional[str] = field(default=None, metadata={
        "help": "Local labelled test file, scored once at the end with the best model (test_results.json)."})
    test_split_name: Optional[str] = field(default=None, metadata={
        "help": "Split of --dataset_name scored as the test set (for example test); hub test splits often lack labels."})
    test_split: float = field(default=0.0, metadata={
        "help": "Fraction of train held out as a seeded test set (stratified by label, or by group such as QA's "
                "paragraphs; never overlapping validation)."})
    max_train_samples: Optional[int] = field(default=None, metadata={
        "help": "Train on the first N training rows, taken after validation and test are held out."})
    max_eval_samples: Optional[int] = field(default=None, metadata={
        "help": "Evaluate on the first N validation rows (the test set is never trimmed)."})
    preprocessing_num_workers: Optional[int] = None
    dataloader_num_workers: int = 0
    group_by_length: bool = field(default=False, metadata={"help": "Batch rows of similar length together (less padding)."})
    # run
    output_dir: Optional[str] = field(default=None, metadata={"help": "Default: outputs/<task>."})
    run_name: Optional[str] = field(default=None, metadata={"help": "Run folder under output_dir. Default: a timestamp."})
    seed: int = 42
    num_train_epochs: float = 3.0
    max_train_steps: Optional[int] = field(default=None, metadata={"help": "Overrides num_train_epochs."})
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = field(
        default="auto", metadata={"help": "auto: bf16/fp16 on GPU; bf16 on CPUs with native bf16 (AMX/AVX512-BF16), else fp32."})
    torch_compile: bool = field(default=False, metadata={
        "help": "Compile the model with torch.compile (inductor) through accelerate. Usually faster steps on GPUs; "
                "CPU training measured slower here (benchmarks/README.md)."})
    cpu_threads: int = field(default=0, metadata={"help": "Torch threads per process on CPU; 0: cores / processes "
                                                    "(accelerate launch otherwise leaves one thread)."})
    # optimisation
    optimizer: Literal["adamw", "adam", "sgd", "adagrad", "rmsprop"] = "adamw"
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    momentum: float = 0.9
    nesterov: bool = False
    lr_scheduler_type: Literal["constant", "linear", "cosine", "exponential", "polynomial", "reduce_on_plateau"] = "linear"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    lr_end: float = field(default=0.0, metadata={"help": "Final LR of the polynomial schedule."})
    lr_power: float = field(default=1.0, metadata={"help": "Power of the polynomial schedule."})
    lr_gamma: float = field(default=0.0, metadata={"help": "Per-step decay of the exponential schedule; 0 = decay to 1% by the end."})
    plateau_patience: int = 2
    plateau_factor: float = 0.5
    max_grad_norm: float = 1.0
    ema_decay: Optional[float] = field(default=None, metadata={"help": "Keep an EMA of the weights, evaluated and saved."})
    class_weights: Optional[str] = field(default=None, metadata={"help": "'balanced', 'sqrt_balanced' (milder) or comma-separated weights per label."})
    label_smoothing: float = 0.0
    loss: Literal["cross_entropy", "focal"] = field(default="cross_entropy", metadata={
        "help": "Classification loss: focal down-weights easy examples by (1 - p_true) ** --focal_gamma."})
    focal_gamma: float = 2.0
    weighted_sampler: bool = field(default=False, metadata={
        "help": "Draw training rows with replacement, each class equally often (inverse class frequency)."})
    l1_penalty: float = field(default=0.0, metadata={"help": "Adds l1_penalty * sum |w| of weight matrices to the loss."})
    l2_penalty: float = field(default=0.0, metadata={
        "help": "Adds l2_penalty * sum w^2 of weight matrices to the loss (coupled L2, unlike --weight_decay)."})
    layerwise_lr_decay: float = field(default=1.0, metadata={
        "help": "Layer i of L numbered layers trains at lr * decay ** (L - i), embeddings at decay ** (L + 1), "
                "the head at lr; 1 = off."})
    # knowledge distillation
    teacher_model: Optional[str] = field(default=None, metadata={
        "help": "A model fine-tuned on the same labels and inputs; its soft targets teach this model."})
    distill_alpha: float = field(default=0.5, metadata={"help": "Weight of the distillation KL; the task loss gets 1 - alpha."})
    distill_temperature: float = 2.0
    # data checks and hyperparameter search
    data_report: bool = field(default=True, metadata={
        "help": "Write data_report.json (duplicates, overlap, labels, image sizes) and print a summary before training."})
    hpo_trials: int = field(default=0, metadata={"help": "Run an optuna search of this many trials instead of one run."})
    hpo_pruning: bool = field(default=True, metadata={"help": "Stop unpromising trials early (median of earlier trials)."})
    # evaluation, checkpoints, logging
    eval_strategy: Literal["epoch", "steps", "end", "no"] = field(default="epoch", metadata={
        "help": "When to evaluate: each epoch, every --eval_steps, once at the end, or never."})
    eval_steps: int = 500
    save_strategy: Literal["epoch", "steps", "no"] = "epoch"
    save_steps: int = 500
    save_total_limit: int = 2
    logging_steps: int = 10
    early_stopping_patience: Optional[int] = field(default=None, metadata={"help": "Evaluations without improvement before stopping."})
    early_stopping_min_delta: float = 0.0
    resume_from_checkpoint: Optional[str] = field(default=None, metadata={
        "help": "'latest', a checkpoint folder, or a run folder (its newest checkpoint)."})
    ignore_resume_mismatch: bool = field(default=False, metadata={
        "help": "Resume even though batch size, seed, data ... differ from the checkpoint's (no longer exact)."})
    allow_paths_outside_data: bool = field(default=False, metadata={
        "help": "Let image tables and COCO files name images outside their folder (../, absolute paths, symlinks)."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Replace a run already in the run folder (--output_dir/--run_name) instead of refusing."})
    report_to: str = field(default="none", metadata={"help": "none, all, or comma list: tensorboard, wandb, trackio, ..."})
    # parameter-efficient fine-tuning
    use_peft: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: Optional[str] = field(default=None, metadata={"help": "Comma list; default: chosen per architecture."})
    # hub
    push_to_hub: bool = False
    hub_model_id: Optional[str] = None

    def __post_init__(self) -> None:
        positive = ["per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                    "logging_steps", "eval_steps", "save_steps"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ConfigError(f"--learning_rate must be > 0, got {self.learning_rate}")
        if self.num_train_epochs <= 0 and not self.max_train_steps:
            raise ConfigError("--num_train_epochs must be > 0 (or give --max_train_steps)")
        if self.max_train_steps is not None and self.max_train_steps < 1:
            raise ConfigError(f"--max_train_steps must be >= 1, got {self.max_train_steps}")
        if not 0.0 <= self.validation_split < 1.0:
            raise ConfigError(f"--validation_split must be in [0, 1), got {self.validation_split}")
        if not 0.0 <= self.test_split < 1.0 or self.test_split + self.validation_split >= 1.0:
            raise ConfigError(f"--test_split must be in [0, 1) and leave training rows beside --validation_split, "
                              f"got {self.test_split}")
        if self.test_split and self.test_file:
            raise ConfigError("--test_split carves a test set from train; it cannot go with --test_file (use one)")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"--ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.lr_scheduler_type == "reduce_on_plateau" and self.eval_strategy in ("no", "end"):
            raise ConfigError("--lr_scheduler_type reduce_on_plateau needs evaluations during training (--eval_strategy epoch|steps)")
        if self.early_stopping_patience is not None and self.eval_strategy in ("no", "end"):
            raise ConfigError("--early_stopping_patience needs evaluations (--eval_strategy epoch|steps)")
        if self.focal_gamma < 0 or self.l1_penalty < 0 or self.l2_penalty < 0:
            raise ConfigError("--focal_gamma, --l1_penalty and --l2_penalty must be >= 0")
        if not 0.0 < self.layerwise_lr_decay <= 1.0:
            raise ConfigError(f"--layerwise_lr_decay must be in (0, 1], got {self.layerwise_lr_decay}")
        if not 0.0 <= self.distill_alpha <= 1.0 or self.distill_temperature <= 0:
            raise ConfigError("--distill_alpha must be in [0, 1] and --distill_temperature > 0")
        if self.hpo_trials < 0 or (self.hpo_trials and self.eval_strategy == "no"):
            raise ConfigError("--hpo_trials needs a count >= 0 and evaluations (--eval_strategy epoch|steps)")
        if self.push_to_hub and not self.hub_model_id:
            raise ConfigError("--push_to_hub needs --hub_model_id (for example your-name/my-model)")
        check_ranges(self)


# The valid range of every numeric option above; "[" and "]" include the bound, "(" and ")" exclude it, and
# None (where allowed) is not checked. __post_init__ checks some of them first with a message of its own.
# A task's options declare theirs in the field itself: field(default=..., metadata={"range": "[1, inf)"}).
RANGES = {
    "max_train_samples": "[1, inf)", "max_eval_samples": "[1, inf)", "preprocessing_num_workers": "[1, inf)",
    "dataloader_num_workers": "[0, inf)", "seed": "[0, 4294967295]", "cpu_threads": "[0, inf)",
    "weight_decay": "[0, inf)", "adam_beta1": "[0, 1)", "adam_beta2": "[0, 1)", "adam_epsilon": "[0, inf)",
    "momentum": "[0, 1)", "warmup_steps": "[0, inf)", "lr_end": "[0, inf)", "lr_power": "(0, inf)",
    "lr_gamma": "[0, 1]", "plateau_patience": "[0, inf)", "plateau_factor": "(0, 1)", "max_grad_norm": "[0, inf)",
    "label_smoothing": "[0, 1)", "save_total_limit": "[1, inf)", "early_stopping_patience": "[1, inf)",
    "early_stopping_min_delta": "[0, inf)", "lora_r": "[1, inf)", "lora_alpha": "(0, inf)", "lora_dropout": "[0, 1)",
    "num_train_epochs": "[0, inf)",
    # also checked by __post_init__ (its messages come first)
    "per_device_train_batch_size": "[1, inf)", "per_device_eval_batch_size": "[1, inf)",
    "gradient_accumulation_steps": "[1, inf)", "logging_steps": "[1, inf)", "eval_steps": "[1, inf)",
    "save_steps": "[1, inf)", "learning_rate": "(0, inf)", "max_train_steps": "[1, inf)", "validation_split": "[0, 1)",
    "test_split": "[0, 1)", "warmup_ratio": "[0, 1)", "ema_decay": "(0, 1)", "focal_gamma": "[0, inf)",
    "l1_penalty": "[0, inf)", "l2_penalty": "[0, inf)", "layerwise_lr_decay": "(0, 1]", "distill_alpha": "[0, 1]",
    "distill_temperature": "(0, inf)", "hpo_trials": "[0, inf)",
    # shared.serving.predict.PredictArguments
    "max_predict_samples": "[1, inf)",
}


def _bounds(interval: str) -> tuple[float, float]:
    """The two bounds of "[low, high)" and the like; ValueError for anything else (a typo in a declaration)."""
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    if interval[0] not in "[(" or interval[-1] not in "])" or not low <= high:
        raise ValueError(f"not a range: {interval!r} (write it like '[0, 1)' or '(0, inf)')")
    return low, high


def _in_range(value: float, interval: str) -> bool:
    low, high = _bounds(interval)
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    return above and below


def option_range(config, name: str) -> str | None:
    """The valid range of option `name` of a config (class or instance): the "range" in its field's metadata,
    from the nearest class along the MRO that declares one (a subclass that only changes the default keeps
    it), else RANGES."""
    klass = config if isinstance(config, type) else type(config)
    for base in klass.__mro__:
        declared = vars(base).get("__dataclass_fields__", {}).get(name)
        if declared is not None and "range" in declared.metadata:
            return declared.metadata["range"]
    return RANGES.get(name)


def check_ranges(cfg) -> None:
    """Every numeric option of a config dataclass (a subclass's too) is finite and lies in its option_range."""
    for option in dataclasses.fields(cfg):
        value = vars(cfg)[option.name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"--{option.name} must be a finite number, got {value}")
        interval = option_range(cfg, option.name)
        if interval and not _in_range(value, interval):
            hint = " (use --save_strategy no to keep no checkpoints)" if option.name == "save_total_limit" else ""
            raise ConfigError(f"--{option.name} must be in {interval}, got {value}{hint}")


def _read_recipe(path: str, known: set[str]) -> dict:
    recipe = Path(path)
    if not recipe.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        values = yaml.safe_load(recipe.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"--config {path}: not valid YAML: {err}") from err
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option: value, got {type(values).__name__}")
    unknown = sorted(str(name) for name in values if name not in known)
    if unknown:
        raise ConfigError(f"--config {path}: unknown option(s) {unknown}; see --help for the valid ones")
    if values.get("config") is not None:  # a run's saved config.yaml says config: null
        raise ConfigError(f"--config {path}: a recipe cannot name another recipe (config: {values['config']}); "
                          "merge the two files")
    return values


def _as_flags(recipe: dict, parser: argparse.ArgumentParser, hints: dict) -> list[str]:
    """A recipe mapping as command-line tokens, so its values are parsed exactly like flags.

    `--name=value` keeps a value that starts with "-" a value. A null is kept only where the option may be
    None (a flag cannot say null), a list only where the option takes several values, a mapping nowhere.
    """
    several = {action.dest for action in parser._actions if action.nargs in ("+", "*")}
    tokens = []
    for name, value in recipe.items():
        if value is None:
            if type(None) not in typing.get_args(hints[name]):
                raise ConfigError(f"{name}: null is not a value of this option; leave the key out to get the "
                                  f"default, or give a value (see --help)")
            continue
        if isinstance(value, dict):
            raise ConfigError(f"{name}: expected a value, got a mapping {value}")
        if isinstance(value, list) and name not in several:
            raise ConfigError(f"{name}: expected one value, got a list {value}")
        values = value if isinstance(value, list) else [value]
        text = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        tokens += [f"--{name}", *text] if isinstance(value, list) else [f"--{name}={text[0]}"]
    return tokens


class _Parser(HfArgumentParser):
    """HfArgumentParser whose errors are one ConfigError line, and which shows each option's range in --help."""

    def error(self, message: str):
        """A bad flag value as one ConfigError line, instead of argparse's full usage dump and exit."""
        raise ConfigError(f"{message}; see --help")

    def _add_dataclass_arguments(self, dtype):
        self._dataclass = dtype  # whose MRO option_range searches for the fields added next
        super()._add_dataclass_arguments(dtype)

    def _parse_dataclass_field(self, parser, field):
        """The field without its "range" metadata (not an argparse keyword), its range appended to the help, and
        "%" in the help escaped (argparse %-formats help: "1%" made --help raise)."""
        interval = option_range(self._dataclass, field.name)
        metadata = {k: v for k, v in field.metadata.items() if k != "range"}
        if interval:
            metadata["help"] = f"{metadata.get('help', '')} Range: {interval}.".lstrip()
        if "help" in metadata:
            metadata["help"] = metadata["help"].replace("%", "%%")
        field = copy.copy(field)
        field.metadata = types.MappingProxyType(metadata)
        HfArgumentParser._parse_dataclass_field(parser, field)


def parse_config(config_class: type, args: list[str] | None = None):
    """Parse flags into `config_class`, with a `--config` YAML recipe supplying defaults.

    The recipe's values become flag tokens placed before the command line's, so each one meets the same
    types, choices and ranges as the same option given as a flag (and a flag given after the recipe wins).
    """
    args = list(sys.argv[1:] if args is None else args)
    parser = _Parser(config_class, allow_abbrev=False)  # a typo that prefixes a real flag is refused, not guessed
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(args)
    if known.config:
        names = {f.name for f in dataclasses.fields(config_class)}
        recipe = _read_recipe(known.config, names)
        parser.set_defaults(**{k: v for k, v in recipe.items() if v is None})  # null: no flag can say it
        try:  # the recipe's values alone, through the very same type and choice checks as flags
            flags = _as_flags(recipe, parser, typing.get_type_hints(config_class))
            parser.parse_known_args(flags)
        except ConfigError as err:
            raise ConfigError(f"--config {known.config}: {err}") from None
        args = flags + args  # flags given after the recipe's win (argparse keeps the last value)
    try:
        (cfg,) = parser.parse_args_into_dataclasses(args=args)
    except ValueError as err:  # unknown flags: HfArgumentParser raises ValueError listing them
        raise ConfigError(str(err)) from err
    return cfg


def config_to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg, path: Path) -> None:
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
