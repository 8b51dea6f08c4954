"""The attacks' reports: recovery as the share of the knowledge unlearning removed, the robustness report's merge of
relearning curves and quantization, and its figure."""

import pytest

from simnpo.analysis.attacks import holds_best, load_reports, plot_attacks, recovered, robustness_report
from simnpo.runs import write_json


def quantize_report(models: dict) -> dict:
    return {
        "bench": "tofu",
        "attack": "quantize",
        "conditions": ["full", "int8", "fp4"],
        "columns": [["forget_quality", "forget quality"], ["forget_Q_A_Prob", "forget prob"]],
        "utility": ["model_utility", "model utility"],
        "knowledge": "forget_Q_A_Prob",
        "models": models,
    }


def summary(prob: float, quality: float = 0.1, utility: float = 0.6) -> dict:
    return {"forget_Q_A_Prob": prob, "forget_quality": quality, "model_utility": utility}


MODELS = {
    "target": {"full": summary(0.9), "int8": summary(0.9), "fp4": summary(0.88)},
    "npo": {"full": summary(0.1), "int8": summary(0.1), "fp4": summary(0.5)},  # 4-bit brings half back
    "simnpo": {"full": summary(0.3), "int8": summary(0.33), "fp4": summary(0.36)},
    "untouched": {"full": summary(0.88), "int8": summary(0.8), "fp4": summary(0.7)},  # a drop of 2 %: too small
}


def test_recovery_is_the_share_of_the_drop_an_attack_brings_back():
    shares = recovered(quantize_report(MODELS))
    assert list(shares) == ["npo", "simnpo", "untouched"]  # the target is the reference, not judged
    assert shares["npo"] == pytest.approx({"int8": 0.0, "fp4": 100 * 0.4 / 0.8})
    assert shares["simnpo"] == pytest.approx({"int8": 100 * 0.03 / 0.6, "fp4": 100 * 0.06 / 0.6})
    assert shares["untouched"] == {"int8": None, "fp4": None}  # too little was removed to measure a share of
    assert holds_best(quantize_report(MODELS)) == "simnpo"  # its worst attack: 10 %, NPO's 50 %


def test_the_robustness_report_puts_relearning_after_full_precision():
    curves = {
        "npo": {"steps": [0, 10], "forget_Q_A_Prob": [0.1, 0.82], "model_utility": [0.6, 0.61], "relearn_items": 4},
        "simnpo": {"steps": [0, 10], "forget_Q_A_Prob": [0.3, 0.42], "model_utility": [0.6, 0.6], "relearn_items": 4},
    }
    report = robustness_report(quantize_report(MODELS), curves)
    assert report["conditions"] == ["full", "relearned", "int8", "fp4"]
    assert report["models"]["npo"]["relearned"] == {"forget_Q_A_Prob": 0.82, "model_utility": 0.61}  # its last step
    assert "relearned" not in report["models"]["target"]  # relearning attacks the unlearned models only
    assert report["recovered"]["npo"]["relearned"] == pytest.approx(90.0)
    assert report["recovered"]["simnpo"]["relearned"] == pytest.approx(20.0)
    assert report["holds_best"] == "simnpo"


def test_the_figure_has_a_panel_per_forget_column_and_the_utility(tmp_path):
    figure = plot_attacks(quantize_report(MODELS))
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["forget quality", "forget prob", "model utility"]
    prob = figure.axes[1]
    assert [line.get_label() for line in prob.lines] == ["target", "NPO", "SimNPO", "untouched"]
    assert list(prob.lines[1].get_ydata()) == [0.1, 0.1, 0.5]
    assert prob.lines[0].get_linestyle() == "--"  # the target


def test_reports_are_found_in_a_run_folder(tmp_path):
    write_json(tmp_path / "quantize" / "quantize.json", quantize_report(MODELS))
    write_json(tmp_path / "robustness.json", quantize_report(MODELS) | {"attack": "all"})
    names = [name for name, _ in load_reports(tmp_path)]
    assert names == ["quantize_quantize", f"robustness_{tmp_path.name}"]
