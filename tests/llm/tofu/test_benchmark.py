"""TOFU's best-point rule: the highest forget quality among the evaluations keeping 95 % of the starting model's
utility."""

from simnpo.llm.tofu.benchmark import best_point


def test_the_best_point_keeps_95_percent_of_the_starting_utility():
    start = {"model_utility": 0.60}
    history = [
        {"epoch": 1, "forget_quality": 0.01, "model_utility": 0.59},
        {"epoch": 2, "forget_quality": 0.20, "model_utility": 0.571},  # 0.95 × 0.60 = 0.57: kept
        {"epoch": 3, "forget_quality": 0.90, "model_utility": 0.569},  # just below: out, though forgetting most
        {"epoch": 4, "forget_quality": None, "model_utility": 0.60},  # no reference: out
    ]
    assert best_point(history, start, None)["epoch"] == 2
    assert best_point(history[2:], start, None) is None
