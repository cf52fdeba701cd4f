"""Selection rules: the reference per-cluster quota, back-fill, global top-N and the baselines."""
from __future__ import annotations

import random
import time

import pytest

from tacos.method.selection import (Candidate, select_all, select_global_top, select_longest, select_per_cluster,
                                    select_random, select_threshold_uniform)


def C(id, cluster, score, raw=None):  # noqa: N802 - short builder for readable fixtures
    return Candidate(id=id, cluster=cluster, score=score, raw_score=raw)


# Cluster 0: 4 members, cluster 1: 2 members, cluster 2: 3 members. "b" is in clusters 1 and 2.
HAND = [
    C("a", 0, 0.9, 90), C("b", 0, 0.8, 85), C("c", 0, 0.1, 40), C("d", 0, -1.0, 10),
    C("b", 1, 0.7, 85), C("e", 1, 0.2, 60),
    C("f", 2, 0.5, 70), C("b", 2, 0.4, 85), C("g", 2, 0.3, 65),
]


def ids(selected):
    return [s.id for s in selected]


def test_reference_rule_ascending_size_dedup_and_quota():
    sel = select_per_cluster(HAND, budget=100, quota=1, backfill=False)
    # Visit order: cluster 1 (size 2) -> 2 (size 3) -> 0 (size 4); one per cluster.
    assert ids(sel) == ["b", "f", "a"]
    assert [s.cluster for s in sel] == [1, 2, 0]
    assert [s.rank for s in sel] == [0, 0, 0]
    assert sel[0].reason == "cluster 1 top-1 (rank 0)"
    assert sel[0].raw_score == 85

    sel = select_per_cluster(HAND, budget=100, quota=2, backfill=False)
    # "b" taken in cluster 1, so cluster 2 skips it (rank 1) and takes "g" (rank 2); cluster 0 skips "b" too.
    assert ids(sel) == ["b", "e", "f", "g", "a", "c"]
    assert [(s.cluster, s.rank) for s in sel] == [(1, 0), (1, 1), (2, 0), (2, 2), (0, 0), (0, 2)]


def test_quota_auto_and_budget_stop():
    sel = select_per_cluster(HAND, budget=4, backfill=False)  # auto quota = ceil(4/3) = 2
    assert ids(sel) == ["b", "e", "f", "g"]
    assert all("top-2" in s.reason for s in sel)


def test_other_cluster_orders():
    assert ids(select_per_cluster(HAND, 3, quota=1, cluster_order="descending_size")) == ["a", "f", "b"]
    assert ids(select_per_cluster(HAND, 3, quota=1, cluster_order="cluster_id")) == ["a", "b", "f"]


def test_backfill_reaches_exact_budget_by_raw_score():
    sel = select_per_cluster(HAND, budget=5, quota=1)
    assert len(sel) == 5 and len(set(ids(sel))) == 5
    assert ids(sel)[:3] == ["b", "f", "a"]
    # Remaining by raw score: f? taken; g 65 > e 60 > c 40 > d 10.
    assert ids(sel)[3:] == ["g", "e"]
    assert sel[3].reason.startswith("back-fill (raw_score=65")
    assert (sel[3].cluster, sel[3].rank) == (2, 2)


def test_backfill_by_percentile():
    sel = select_per_cluster(HAND, budget=5, quota=1, backfill_key="percentile")
    # Percentiles (mid-rank): e 0.25 (of 2), g 1/6 (of 3), c 0.375 (of 4), d 0.125.
    assert ids(sel)[3:] == ["c", "e"]
    assert "percentile=0.375" in sel[3].reason


def test_backfill_without_raw_scores_never_crashes_and_ranks_them_last():
    no_raw = [C(c.id, c.cluster, c.score) for c in HAND]
    assert len(select_per_cluster(no_raw, budget=3, quota=1)) == 3
    picked = select_per_cluster(no_raw, budget=5, quota=1)  # back-fill by raw_score, none has one: by percentile
    assert len(picked) == 5 and all("no raw_score, percentile=" in s.reason for s in picked[3:])
    mixed = [C(c.id, c.cluster, c.score, None if c.id == "a" else c.raw_score) for c in HAND]
    fill = [s for s in select_per_cluster(mixed, budget=len(HAND), quota=1) if s.reason.startswith("back-fill")]
    with_raw = [s for s in fill if "raw_score=" in s.reason and "no raw_score" not in s.reason]
    assert fill[: len(with_raw)] == with_raw  # every candidate with a raw score comes before any without


def test_budget_larger_than_pool_takes_each_record_once():
    sel = select_per_cluster(HAND, budget=100)
    assert sorted(ids(sel)) == list("abcdefg")
    assert select_per_cluster(HAND, budget=0) == []
    assert select_per_cluster([], budget=10) == []


def test_tie_breaking_is_deterministic_and_order_free():
    tied = [C(f"x{i}", i % 3, 1.0, 50.0) for i in range(30)] + [C("y", 0, 1.0, 51.0)]
    a = select_per_cluster(tied, budget=7, quota=2)
    shuffled = tied.copy()
    random.Random(1).shuffle(shuffled)
    assert a == select_per_cluster(shuffled, budget=7, quota=2)
    # Equal scores: higher raw score first, then id (cluster 0 is the largest, so visited last).
    assert [s.id for s in a if s.cluster == 0][:2] == ["y", "x0"]
    assert ids(a)[:2] == ["x1", "x10"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="budget"):
        select_per_cluster(HAND, budget=-1)
    with pytest.raises(ValueError, match="quota"):
        select_per_cluster(HAND, budget=3, quota="some")
    with pytest.raises(ValueError, match="cluster_order"):
        select_per_cluster(HAND, budget=3, cluster_order="random")
    with pytest.raises(ValueError, match="twice"):
        select_per_cluster([C("a", 0, 1.0), C("a", 0, 2.0)], budget=1)
    with pytest.raises(ValueError, match="non-finite"):
        select_per_cluster([C("a", 0, float("nan"))], budget=1)


def test_global_top_uses_best_raw_score_per_record():
    sel = select_global_top(HAND, budget=3)
    assert ids(sel) == ["a", "b", "f"]
    assert [s.rank for s in sel] == [0, 1, 2]
    assert sel[1].cluster == 0  # b's best membership: equal raw scores, highest in-cluster score wins
    no_raw = [C(c.id, c.cluster, c.score) for c in HAND]
    assert ids(select_global_top(no_raw, budget=2)) == ["a", "b"]
    with pytest.raises(ValueError, match="some candidates only"):
        select_global_top(HAND + [C("z", 3, 1.0)], budget=2)


def test_random_is_seeded_and_independent_of_input_order():
    pool = [f"r{i}" for i in range(100)]
    a = select_random(pool, 10, seed=3)
    assert a == select_random(list(reversed(pool)), 10, seed=3)
    assert ids(a) != ids(select_random(pool, 10, seed=4))
    assert len(set(ids(a))) == 10 and all(s.reason == "random" for s in a)
    assert len(select_random(pool[:5], 10, seed=3)) == 5


def test_longest_with_id_tie_break():
    sel = select_longest({"a": 10, "b": 30, "c": 30, "d": 5}, budget=3)
    assert ids(sel) == ["b", "c", "a"]
    assert sel[0].score == 30.0 and sel[0].reason == "longest"


def test_threshold_uniform():
    scores = {f"r{i:02d}": (5.0 if i < 20 else 3.0) for i in range(40)}
    sel = select_threshold_uniform(scores, threshold=4.5, budget=8, seed=0)
    assert len(sel) == 8 and all(scores[s.id] >= 4.5 for s in sel)
    assert sel == select_threshold_uniform(scores, threshold=4.5, budget=8, seed=0)
    assert ids(sel) != ids(select_threshold_uniform(scores, threshold=4.5, budget=8, seed=1))
    assert "uniform sample of 8 from 20" in sel[0].reason
    few = select_threshold_uniform(scores, threshold=4.5, budget=50, seed=0)
    assert len(few) == 20 and "fewer than budget 50" in few[0].reason


def test_select_all():
    sel = select_all(["q", "p"])
    assert ids(sel) == ["q", "p"] and [s.rank for s in sel] == [0, 1]
    with pytest.raises(ValueError, match="duplicates"):
        select_all(["q", "q"])


def test_selection_is_fast_on_200k_candidates():
    rng = random.Random(0)
    cands = [Candidate(id=f"r{i // 2}", cluster=rng.randrange(500), score=rng.gauss(0, 1),
                       raw_score=float(rng.randrange(101))) for i in range(200_000)]
    cands = list({(c.id, c.cluster): c for c in cands}.values())  # one candidate per (record, cluster)
    t = time.perf_counter()
    sel = select_per_cluster(cands, budget=50_000, quota=60)  # quota short of budget: back-fill runs too
    top = select_global_top(cands, budget=50_000)
    elapsed = time.perf_counter() - t
    assert len(sel) == 50_000 and len(set(ids(sel))) == 50_000
    assert any(s.reason.startswith("back-fill") for s in sel)
    assert len(top) == 50_000
    assert elapsed < 10, elapsed
