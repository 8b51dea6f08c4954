"""Preset keys are checked: every built-in preset's, and a misspelt one is one line naming the closest valid name."""

import pytest
from typer.testing import CliRunner

from simnpo.cli import app
from simnpo.llm.benchmarks import BENCHMARKS
from simnpo.llm.presets import check_keys, check_preset_keys
from simnpo.llm.trainer import LOSS_OPTIONS, TRAINING_OPTIONS


@pytest.mark.parametrize("bench", list(BENCHMARKS))
def test_every_built_in_preset_names_only_valid_keys(bench):
    from dataclasses import fields

    benchmark = BENCHMARKS[bench]
    settings = [f.name for f in fields(benchmark.settings)]
    for name, preset in benchmark.presets.items():
        check_preset_keys(name, preset, settings, LOSS_OPTIONS + TRAINING_OPTIONS)


def test_a_misspelt_key_names_the_closest_valid_one():
    with pytest.raises(ValueError, match=r"unknown key 'betta' in preset p \(methods: npo\); did you mean 'beta'\?"):
        check_preset_keys("p", {"methods": {"npo": {"betta": 1.0}}}, ["split"], LOSS_OPTIONS + TRAINING_OPTIONS)
    with pytest.raises(ValueError, match=r"'sharred' in preset p; did you mean 'shared'\?"):
        check_preset_keys("p", {"sharred": {}}, ["split"], LOSS_OPTIONS)
    with pytest.raises(ValueError, match="valid names: a, b"):
        check_keys(["zzzzzz"], ["b", "a"], "x")


def test_the_command_refuses_a_preset_with_a_misspelt_key(monkeypatch, tmp_path):
    monkeypatch.setitem(BENCHMARKS["tofu"].presets, "typo", {"shared": {"learning_rate": 1e-4}, "methods": {}})
    result = CliRunner().invoke(app, ["llm", "--bench", "tofu", "--preset", "typo", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "unknown key 'learning_rate' in preset typo (shared)" in result.output
    assert not (tmp_path / "run").exists()
