"""The gradient-weight figure's data follow the closed forms of docs/conventions.md."""

import numpy as np
import pytest

from simnpo.analysis.weights import WeightsPlotConfig, weight_curves, write_weights_figure


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_curves_follow_the_weight_formulas():
    config = WeightsPlotConfig(lengths=(5, 80), betas=(0.5,), ref_token_logprob=-1.0, margin=0.2, points=11)
    data = weight_curves(config)
    x = np.asarray(data["token_logprob"])
    assert x[0] == pytest.approx(-5.0) and x[-1] == pytest.approx(0.0)
    for curve in data["curves"]:
        n = curve["length"]
        npo = np.asarray(curve["npo"])
        assert np.allclose(npo, 2 * sigmoid(0.5 * n * (x + 1.0)))
        assert np.allclose(np.asarray(curve["simnpo"]), 2 / n * sigmoid(0.5 * x + 0.2))
    # at the reference NPO's weight is 1 for every length
    config = WeightsPlotConfig(lengths=(3, 30), token_logprob_range=(-2.0, 0.0), points=3)
    for curve in weight_curves(config)["curves"]:
        assert curve["npo"][1] == pytest.approx(1.0)


def test_simnpo_weight_per_token_does_not_depend_on_length_but_npo_does():
    data = weight_curves(WeightsPlotConfig(lengths=(5, 20, 80), betas=(2.5,), points=50))
    per_token_sim = [np.asarray(c["simnpo"]) * c["length"] for c in data["curves"]]
    per_token_npo = [np.asarray(c["npo"]) * c["length"] for c in data["curves"]]
    assert all(np.allclose(per_token_sim[0], other) for other in per_token_sim[1:])
    assert not np.allclose(per_token_npo[0], per_token_npo[2])


def test_write_weights_figure(tmp_path):
    paths = write_weights_figure(WeightsPlotConfig(points=20), tmp_path)
    assert sorted(p.name for p in paths) == ["weights.json", "weights.pdf", "weights.png"]
    assert all(p.stat().st_size > 1000 for p in paths if p.suffix != ".json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.json", "weights.pdf", "weights.png"]


@pytest.mark.parametrize(
    "kwargs",
    [{"betas": (1, 2, 3, 4, 5)}, {"token_logprob_range": (0.0, -1.0)}, {"lengths": ()}, {"ref_token_logprob": -9.0}],
)
def test_bad_plot_configs_raise(kwargs):
    with pytest.raises(ValueError):
        WeightsPlotConfig(**kwargs)
