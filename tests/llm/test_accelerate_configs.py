"""The shipped accelerate configuration files are valid and say what they claim."""

from pathlib import Path

import pytest
import yaml
from accelerate.commands.config.config_args import load_config_from_file

import simnpo.llm

FOLDER = Path(simnpo.llm.__file__).parent / "accelerate_configs"


@pytest.mark.parametrize("name, kind", [("deepspeed_zero3", "DEEPSPEED"), ("fsdp", "FSDP"), ("multi_gpu", "MULTI_GPU")])
def test_configs_load_in_accelerate(name, kind):
    path = FOLDER / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    assert raw["distributed_type"] == kind and raw["mixed_precision"] == "bf16"
    config = load_config_from_file(str(path))
    assert config.distributed_type == kind
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == 3
