"""Every launch config beside accelerate_config.yaml parses into the distributed setting it promises."""
from __future__ import annotations

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "accelerate_config.yaml": ("MULTI_GPU", "fp16", 1),
    "accelerate_config_cpu.yaml": ("NO", "no", 1),
    "accelerate_config_multi_node.yaml": ("MULTI_GPU", "fp16", 2),
    "accelerate_config_fsdp.yaml": ("FSDP", "bf16", 1),
    "accelerate_config_deepspeed_zero2.yaml": ("DEEPSPEED", "fp16", 1),
}


def test_every_config_file_is_covered():
    assert sorted(p.name for p in ROOT.glob("accelerate_config*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_parses(name):
    config = load_config_from_file(str(ROOT / name))
    kind, precision, machines = EXPECTED[name]
    assert (config.distributed_type.value, config.mixed_precision, config.num_machines) == (kind, precision, machines)
    text = (ROOT / name).read_text()
    assert text.startswith("#") and "accelerate launch --config_file" in text


def test_fsdp_and_zero2_settings():
    fsdp = load_config_from_file(str(ROOT / "accelerate_config_fsdp.yaml")).fsdp_config
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP" and fsdp["fsdp_version"] == 2
    zero = load_config_from_file(str(ROOT / "accelerate_config_deepspeed_zero2.yaml")).deepspeed_config
    assert zero["zero_stage"] == 2
