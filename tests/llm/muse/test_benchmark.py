"""MUSE's best-point rule: the smallest |PrivLeak| among the evaluations keeping 90 % of the retrain model's
KnowMem on D_r."""

from simnpo.llm.muse.benchmark import best_point


def test_the_best_point_has_the_smallest_privleak_keeping_90_percent_of_the_retrain_utility():
    retrain = {"knowmem_r": 50.0}
    history = [
        {"epoch": 1, "privleak": -90.0, "knowmem_r": 60.0},
        {"epoch": 2, "privleak": 12.0, "knowmem_r": 45.0},  # 0.9 × 50 = 45: kept
        {"epoch": 3, "privleak": -11.0, "knowmem_r": 46.0},  # |−11| < 12: the best
        {"epoch": 4, "privleak": 1.0, "knowmem_r": 44.9},  # nearest 0, but below 45: out
    ]
    assert best_point(history, {"knowmem_r": 80.0}, retrain)["epoch"] == 3
    assert best_point(history[3:], {}, retrain) is None
    assert best_point(history, {"knowmem_r": 80.0}, None) is None  # no retrain model, no rule
