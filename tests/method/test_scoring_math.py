"""Pair formation, outcomes, position-bias diagnostics and Bradley–Terry aggregation."""
from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
from scipy.stats import spearmanr

from tacos.judges.orders import combine, position_stats, text_outcome, verdict
from tacos.method.bradley_terry import bradley_terry, bradley_terry_ci
from tacos.method.scoring import make_pairs

IDS = [f"r{i:03d}" for i in range(11)]


# --- make_pairs -------------------------------------------------------------------------------------------

def test_make_pairs_is_deterministic_and_depends_only_on_the_id_set():
    a = make_pairs(IDS, rounds=3, seed=7, salt="c4")
    assert a == make_pairs(list(reversed(IDS)), rounds=3, seed=7, salt="c4")
    assert a != make_pairs(IDS, rounds=3, seed=8, salt="c4")
    assert a != make_pairs(IDS, rounds=3, seed=7, salt="c5")


@pytest.mark.parametrize("n", [2, 3, 5, 10, 11, 101])
def test_make_pairs_covers_every_member_without_self_pairs(n):
    ids = [f"x{i}" for i in range(n)]
    pairs = make_pairs(ids, rounds=1, seed=0)
    assert len(pairs) == math.ceil(n / 2)
    assert all(a != b for a, b in pairs)
    seen = Counter(x for p in pairs for x in p)
    assert set(seen) == set(ids)
    assert sum(seen.values()) == 2 * len(pairs)
    # Only the leftover's partner is compared twice in an odd round.
    assert sorted(seen.values())[-1] == (2 if n % 2 else 1)


def test_make_pairs_rounds_differ_and_accumulate():
    one = make_pairs(IDS, rounds=1, seed=3)
    three = make_pairs(IDS, rounds=3, seed=3)
    assert three[: len(one)] == one
    assert len(three) == 3 * len(one)
    assert three[len(one): 2 * len(one)] != one  # another shuffle each round
    assert make_pairs(IDS, rounds=0, seed=3) == []


def test_make_pairs_small_and_bad_inputs():
    assert make_pairs(["only"], rounds=5, seed=0) == []
    assert make_pairs([], rounds=5, seed=0) == []
    with pytest.raises(ValueError, match="duplicates"):
        make_pairs(["a", "a", "b"], rounds=1, seed=0)
    with pytest.raises(ValueError, match="rounds"):
        make_pairs(IDS, rounds=-1, seed=0)


# --- outcomes / order consistency / raw means -------------------------------------------------------------

def test_one_order_verdicts_and_the_reference_combination():
    assert [text_outcome(5, 3), text_outcome(3, 3), text_outcome(2, 3), text_outcome(3.5, 3, tie_margin=1)] == \
        [1.0, 0.5, 0.0, 0.5]
    assert combine("win", "tie") == "win" and combine("win", "lose") == "tie" and combine("tie", "lose") == "lose"
    assert combine("win", None) is None
    with pytest.raises(ValueError):
        combine("win", "maybe")
    with pytest.raises(ValueError):
        verdict(1, 2, tie_margin=-1)


def test_position_stats_of_a_fair_and_of_a_fully_position_biased_judge():
    fair = [({"first_won": True}, {"first_won": False}), ({"first_won": False}, {"first_won": True})]
    assert position_stats(fair)["consistency"] == 1.0 and position_stats(fair)["first_position_win_rate"] == 0.5
    biased = [({"first_won": True, "logit": 3.2, "answer_mass": 0.9}, {"first_won": True, "logit": 2.8,
                                                                      "answer_mass": 0.7})]
    s = position_stats(biased)
    assert s["consistency"] == 0.0 and s["first_position_win_rate"] == 1.0
    assert s["mean_position_offset"] == pytest.approx(3.0) and s["mean_abs_preference"] == pytest.approx(0.2)
    assert s["mean_answer_mass"] == pytest.approx(0.8)
    assert position_stats([({"first_won": None}, {"first_won": True})])["consistency"] is None


# --- Bradley–Terry ----------------------------------------------------------------------------------------

def _synthetic(n: int, rounds: int, seed: int):
    """Comparisons drawn from known log-strengths through make_pairs, as the pipeline would."""
    rng = random.Random(seed)
    ids = [f"s{i:04d}" for i in range(n)]
    truth = {i: rng.gauss(0, 1.5) for i in ids}
    comps = []
    for a, b in make_pairs(ids, rounds=rounds, seed=seed):
        p_a = 1 / (1 + math.exp(truth[b] - truth[a]))
        comps.append((a, b, 1.0 if rng.random() < p_a else 0.0))
    return ids, truth, comps


def test_bradley_terry_recovers_true_order():
    ids, truth, comps = _synthetic(200, rounds=20, seed=1)
    est = bradley_terry(ids, comps)
    rho = spearmanr([truth[i] for i in ids], [est[i] for i in ids]).statistic
    assert rho > 0.9
    assert abs(sum(est.values())) < 1e-8


def test_bradley_terry_is_finite_with_prior_and_unseen_items_are_zero():
    comps = [("a", "b", 1.0), ("a", "c", 1.0), ("b", "c", 1.0)]  # a never loses, c never wins
    est = bradley_terry(["a", "b", "c", "z"], comps)
    assert all(math.isfinite(v) for v in est.values())
    assert est["a"] > est["b"] > est["c"]
    assert est["z"] == 0.0
    assert abs(est["a"] + est["b"] + est["c"]) < 1e-9


def test_bradley_terry_ties_and_symmetry():
    est = bradley_terry(["a", "b"], [("a", "b", 0.5), ("b", "a", 0.5)])
    assert est == pytest.approx({"a": 0.0, "b": 0.0}, abs=1e-9)
    est = bradley_terry(["a", "b"], [("a", "b", 1.0), ("b", "a", 0.0), ("a", "b", 0.0)])
    assert est["a"] == pytest.approx(-est["b"]) and est["a"] > 0
    # Half-wins: two ties plus one win sits between one win and no information.
    one_win = bradley_terry(["a", "b"], [("a", "b", 1.0)])["a"]
    ties_and_win = bradley_terry(["a", "b"], [("a", "b", 1.0), ("a", "b", 0.5), ("b", "a", 0.5)])["a"]
    assert 0 < ties_and_win < one_win


def test_bradley_terry_prior_zero_matches_mle_on_a_connected_design():
    # a beats b 2 of 3, b beats c 2 of 3, a beats c 2 of 3: unique finite MLE.
    comps = [("a", "b", 1.0), ("a", "b", 1.0), ("b", "a", 1.0), ("b", "c", 1.0), ("b", "c", 1.0),
             ("c", "b", 1.0), ("a", "c", 1.0), ("a", "c", 1.0), ("c", "a", 1.0)]
    est = bradley_terry(["a", "b", "c"], comps, prior=0.0)
    p = {k: math.exp(v) for k, v in est.items()}
    # MLE condition: observed wins == expected wins for every item.
    for i in p:
        expected = sum(p[x if x == i else y] / (p[x] + p[y]) for x, y, _ in comps if i in (x, y))
        observed = sum(1.0 for x, y, r in comps if (x == i and r == 1.0) or (y == i and r == 0.0))
        assert expected == pytest.approx(observed, rel=1e-6)


def test_bradley_terry_prior_zero_refuses_an_infinite_mle():
    with pytest.raises(ValueError, match="prior > 0"):
        bradley_terry(["a", "b", "c"], [("a", "b", 1.0), ("b", "c", 0.5), ("c", "b", 0.5)], prior=0.0)
    with pytest.raises(ValueError, match="prior > 0"):
        bradley_terry_ci(["a", "b"], [("a", "b", 1.0), ("b", "a", 1.0)], prior=0.0)


def test_bradley_terry_warns_when_not_converged():
    ids, _, comps = _synthetic(50, rounds=3, seed=4)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        bradley_terry(ids, comps, max_iter=2)
    with pytest.warns(RuntimeWarning, match="11 of 11 fits"):
        bradley_terry_ci(ids, comps, n_boot=10, max_iter=2)


def test_bradley_terry_rejects_bad_input():
    with pytest.raises(ValueError, match="not in ids"):
        bradley_terry(["a"], [("a", "q", 1.0)])
    with pytest.raises(ValueError, match="itself"):
        bradley_terry(["a", "b"], [("a", "a", 1.0)])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bradley_terry(["a", "b"], [("a", "b", 2.0)])
    with pytest.raises(ValueError, match="prior"):
        bradley_terry(["a", "b"], [], prior=-1)


def test_bradley_terry_ci_contains_estimate_and_narrows_with_more_data():
    ids, _, few = _synthetic(30, rounds=4, seed=2)
    _, _, many = _synthetic(30, rounds=40, seed=2)
    ci_few = bradley_terry_ci(ids, few, n_boot=100, seed=0)
    ci_many = bradley_terry_ci(ids, many, n_boot=100, seed=0)
    assert ci_few == bradley_terry_ci(ids, few, n_boot=100, seed=0)  # seeded
    point = bradley_terry(ids, few)
    for i in ids:
        est, lo, hi = ci_few[i]
        assert lo <= est <= hi
        assert est == pytest.approx(point[i], abs=1e-5)
    width = lambda ci: np.mean([hi - lo for _, lo, hi in ci.values()])  # noqa: E731
    assert width(ci_many) < 0.6 * width(ci_few)


def test_bradley_terry_ci_without_comparisons():
    assert bradley_terry_ci(["a", "b"], [], n_boot=5) == {"a": (0.0, 0.0, 0.0), "b": (0.0, 0.0, 0.0)}


def test_bradley_terry_scales_to_a_large_cluster():
    import time

    ids, truth, comps = _synthetic(5000, rounds=5, seed=3)
    t = time.perf_counter()
    est = bradley_terry(ids, comps)
    assert time.perf_counter() - t < 10
    assert spearmanr([truth[i] for i in ids], [est[i] for i in ids]).statistic > 0.7
