"""Paired statistics of the Markov findings on hand-built trajectories whose answer is known."""

import numpy as np
import pytest

from simnpo.analysis.robustness import (
    COLORBAR_LABEL,
    ROBUSTNESS_COLUMNS,
    judged_chains,
    mean_interval,
    paired_findings,
    plot_robustness,
    retain_kl_at,
    robustness_rows,
)

JUDGED = {"difficulty": "forget1", "length": "forget2"}


def chains(case: str) -> list[dict]:
    """difficulty: forget2 never pretrained; length: forget2 short. Either way one judged chain (JUDGED)."""
    short = 5 if case == "length" else 20
    return [
        {"name": "retain", "length": 20, "pretrain": True},
        {"name": "forget1", "length": 20, "pretrain": True},
        {"name": "forget2", "length": short, "pretrain": case == "length"},
    ]


def entry(per_seed: list) -> dict:
    values = np.asarray(per_seed, dtype=float)
    return {"mean": values.mean(0).tolist(), "std": values.std(0).tolist(), "seeds": values.tolist()}


def make_case(case: str, runs: dict, retrained: list[float]) -> dict:
    """A case of the results schema. ``runs``: method -> per seed (forget KL, retain KL) of the judged chain;
    ``retrained``: per seed the retrained model's forget KL of that chain. The other forget chain is forgotten at
    once, so judging it would change every answer."""
    judged = JUDGED[case]
    other = "forget2" if judged == "forget1" else "forget1"
    methods = {}
    for method, seeds in runs.items():
        steps = len(seeds[0][0])
        kl = {
            "retain": entry([r for _, r in seeds]),
            judged: entry([f for f, _ in seeds]),
            other: entry([[9.0] * steps for _ in seeds]),
        }
        methods[method] = {"iterations": list(range(0, 5 * steps, 5)), "kl": kl}
    reference = {
        "retrained": {"retain": entry([0.01] * len(retrained)), judged: entry(retrained), other: entry([1.0])},
        "pretrained": {"retain": entry([0.01]), judged: entry([0.001]), other: entry([0.001])},
    }
    seeds = list(range(len(retrained)))
    return {"chains": chains(case), "seeds": seeds, "reference": reference, "methods": methods}


def make_results(*points) -> dict:
    """``points``: (β, lr, {case: case dict})."""
    return {"kind": "markov", "points": [{"beta": b, "lr": lr, "cases": cases} for b, lr, cases in points]}


def one_case(runs: dict, retrained: list[float], case: str = "difficulty", beta=1.0, lr=5e-4) -> dict:
    return make_results((beta, lr, {case: make_case(case, runs, retrained)}))


def with_differences(differences: list[float], simnpo_cost: float = 0.3) -> dict:
    """Seeds whose paired difference is given: both reach the retrained forget KL (0.4) at their second point,
    SimNPO at retain KL ``simnpo_cost`` and NPO at ``simnpo_cost + d``."""
    runs = {
        "npo": [([0.0, 0.4], [0.0, simnpo_cost + d]) for d in differences],
        "simnpo": [([0.0, 0.4], [0.0, simnpo_cost]) for _ in differences],
    }
    return one_case(runs, [0.4] * len(differences))


def at(results: dict, level: str = "retrained") -> dict:
    (found,) = [f for f in paired_findings(results) if f["level"] == level]
    return found


NPO = ([0.0, 0.2, 0.8], [0.0, 0.1, 0.5])
SIMNPO = ([0.0, 0.4, 0.9], [0.0, 0.05, 0.3])


def test_the_crossing_is_interpolated_between_evaluation_points():
    results = one_case({"npo": [NPO], "simnpo": [SIMNPO]}, [0.4])
    # NPO reaches 0.4 a third of the way from (0.2, 0.1) to (0.8, 0.5): retain KL 0.1 + 0.4/3; SimNPO at its point
    found = at(results)
    assert found["costs"]["npo"] == [pytest.approx(0.1 + 0.4 / 3)] and found["costs"]["simnpo"] == [0.05]
    assert found["differences"] == [pytest.approx(0.1 + 0.4 / 3 - 0.05)] and found["censored"] == 0
    # twice the level, 0.8: NPO exactly at its last point (0.5), SimNPO 4/5 of the way from 0.05 to 0.3
    double = at(results, "2× retrained")
    assert double["level_mean"] == pytest.approx(0.8)
    assert double["costs"] == {"npo": [pytest.approx(0.5)], "simnpo": [pytest.approx(0.25)]}


def test_one_seed_is_inconclusive_however_large_the_difference():
    found = at(with_differences([5.0]))
    assert found["n"] == 1 and found["mean"] == pytest.approx(5.0)
    assert (found["low"], found["high"], found["verdict"]) == (None, None, "inconclusive")


def test_a_method_that_never_forgets_enough_is_charged_its_last_retain_kl():
    never = ([0.0, 0.1, 0.3], [0.0, 0.02, 0.04])  # SimNPO's forget KL stays below 0.4
    found = at(one_case({"npo": [NPO], "simnpo": [never]}, [0.4]))
    assert found["censored"] == 1 and found["n"] == 1 and found["excluded"] == 0
    assert found["costs"]["simnpo"] == [0.04]
    assert found["differences"] == [pytest.approx(0.1 + 0.4 / 3 - 0.04)]
    # neither reaches it on seed 1: that pair is left out, seed 0's pair kept
    found = at(one_case({"npo": [NPO, never], "simnpo": [SIMNPO, never]}, [0.4, 0.4]))
    assert (found["n"], found["excluded"], found["censored"], found["seeds"]) == (1, 1, 0, [0])
    # neither ever: nothing to compare
    found = at(one_case({"npo": [never], "simnpo": [never]}, [0.4]))
    assert (found["n"], found["mean"], found["verdict"]) == (0, None, "inconclusive")


def test_each_seed_is_judged_at_its_own_retrained_forget_kl():
    found = at(one_case({"npo": [NPO, NPO], "simnpo": [SIMNPO, SIMNPO]}, [0.4, 0.8]))
    # seed 0 at 0.4 (as above), seed 1 at 0.8; their mean 0.6 would give both seeds the same costs
    assert found["costs"]["npo"] == [pytest.approx(0.1 + 0.4 / 3), pytest.approx(0.5)]
    assert found["costs"]["simnpo"] == [pytest.approx(0.05), pytest.approx(0.25)]
    assert found["differences"] == [pytest.approx(0.1 + 0.4 / 3 - 0.05), pytest.approx(0.25)]
    assert found["levels"] == [0.4, 0.8] and found["level_mean"] == pytest.approx(0.6)


def test_clearly_positive_differences_hold():
    d = [0.10, 0.12, 0.14, 0.16, 0.18]
    found = at(with_differences(d))
    assert found["n"] == 5 and found["mean"] == pytest.approx(0.14)
    assert 0.10 <= found["low"] < 0.14 < found["high"] <= 0.18  # contains the mean, excludes 0
    assert found["verdict"] == "holds"
    assert mean_interval(d) == mean_interval(d)  # a fixed generator: reproducible


def test_differences_around_zero_are_inconclusive():
    found = at(with_differences([-0.2, -0.1, 0.0, 0.1, 0.2]))
    assert found["mean"] == pytest.approx(0.0, abs=1e-12)
    assert found["low"] < 0 < found["high"] and found["verdict"] == "inconclusive"


def test_clearly_negative_differences_are_reversed():
    found = at(with_differences([-0.3, -0.25, -0.2, -0.22]))
    assert found["high"] < 0 and found["low"] >= -0.3 and found["verdict"] == "reversed"


def test_identical_differences_give_a_point_interval():
    assert mean_interval([0.1, 0.1, 0.1]) == (0.1, 0.1)
    assert mean_interval([0.1]) == (None, None)
    assert at(with_differences([0.1, 0.1]))["verdict"] == "holds"


def test_judged_chains_per_case():
    assert judged_chains("difficulty", make_case("difficulty", {}, [0.4])) == ["forget1"]
    assert judged_chains("length", make_case("length", {}, [0.4])) == ["forget2"]
    results = one_case({"npo": [NPO], "simnpo": [SIMNPO]}, [0.4], case="length")
    assert {(f["case"], f["chain"]) for f in paired_findings(results)} == {("length", "forget2")}


def test_every_point_is_judged_and_a_point_without_both_methods_skipped():
    runs = {"npo": [NPO], "simnpo": [SIMNPO]}
    results = make_results(
        (1.0, 5e-4, {"difficulty": make_case("difficulty", runs, [0.4])}),
        (2.0, 5e-4, {"difficulty": make_case("difficulty", {"npo": [NPO]}, [0.4])}),
        (2.0, 1e-3, {"length": make_case("length", runs, [0.4])}),
    )
    found = paired_findings(results)
    assert [(f["beta"], f["lr"], f["case"], f["level"]) for f in found] == [
        (1.0, 5e-4, "difficulty", "retrained"),
        (1.0, 5e-4, "difficulty", "2× retrained"),
        (2.0, 1e-3, "length", "retrained"),
        (2.0, 1e-3, "length", "2× retrained"),
    ]


def test_table_rows_are_formatted_to_three_decimals():
    rows = robustness_rows(with_differences([0.10, 0.12, 0.14, 0.16, 0.18]))
    assert len(rows) == 2 and all(len(r) == len(ROBUSTNESS_COLUMNS) for r in rows)
    found = at(with_differences([0.10, 0.12, 0.14, 0.16, 0.18]))
    interval = f"[{found['low']:.3f}, {found['high']:.3f}]"
    assert rows[0] == ["difficulty", "forget1", "1", "0.0005", "0.400 (retrained)", "5 (0)", "0.140"] + [
        interval,
        "holds",
    ]
    # twice the retrained KL (0.8) is never reached: every pair left out
    assert rows[1][4:] == ["0.800 (2× retrained)", "0 of 5 (0)", "–", "–", "inconclusive"]


def test_heat_map_puts_each_points_mean_in_its_cell():
    def case(d):
        return {"difficulty": with_differences(d)["points"][0]["cases"]["difficulty"]}

    results = make_results(
        (1.0, 5e-4, case([0.1, 0.2, 0.3])),
        (5.0, 5e-4, case([-0.1, -0.2])),
        (1.0, 1e-3, case([0.0, 0.1])),
        (5.0, 1e-3, case([0.4])),
    )
    fig = plot_robustness(results)
    heat, bar = fig.axes
    grid = heat.images[0].get_array()
    # rows: lr 5e-4, 1e-3; columns: β 1, 5
    assert grid.tolist() == [[pytest.approx(0.2), pytest.approx(-0.15)], [pytest.approx(0.05), pytest.approx(0.4)]]
    norm = heat.images[0].norm
    assert (norm.vmin, norm.vmax) == (pytest.approx(-0.4), pytest.approx(0.4))  # centred at 0
    assert bar.get_ylabel() == COLORBAR_LABEL
    texts = [t.get_text() for t in heat.texts]
    assert any(t.startswith("+0.200\n[") and t.endswith("holds") for t in texts)
    assert any(t.endswith("reversed") for t in texts) and "+0.400\nno interval\ninconclusive" in texts
    assert [t.get_text() for t in heat.get_xticklabels()] == ["1", "5"]
    assert [t.get_text() for t in heat.get_yticklabels()] == ["0.0005", "0.001"]


def test_retain_kl_at_interpolates_the_first_crossing():
    assert retain_kl_at([0.0, 1.0, 3.0], [0.1, 0.2, 0.6], 2.0) == pytest.approx(0.4)
    assert retain_kl_at([0.5, 1.0], [0.1, 0.2], 0.2) == pytest.approx(0.1)
    assert retain_kl_at([0.0, 1.0], [0.1, 0.2], 5.0) is None
