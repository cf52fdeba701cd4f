"""Selection rules: the reference per-cluster quota (method_spec §8), global top-N, and the baselines.

Pure and deterministic: every sort has a full tie-break ending on the record id, and random rules draw from
the sorted ids with a seeded generator, so results depend only on the inputs' content, never on their order.
Sort-based throughout (O(n log n)); 1M candidates take seconds.
"""
from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Candidate:
    """One (record, cluster) membership with the score used to rank it inside that cluster."""

    id: str
    cluster: int
    score: float  # ranking score inside the cluster, e.g. Bradley–Terry log-strength
    raw_score: float | None = None  # absolute judge score (comparable across clusters)
    ci_low: float | None = None
    ci_high: float | None = None
    output_len: int = 0


@dataclass(frozen=True)
class Selected:
    """One chosen record and why it was chosen."""

    id: str
    cluster: int | None
    score: float | None
    rank: int  # 0-based: rank within its cluster for cluster rules, else position in the rule's global order
    reason: str
    ci_low: float | None = None
    ci_high: float | None = None
    raw_score: float | None = None


CLUSTER_ORDERS = ("ascending_size", "descending_size", "cluster_id")
BACKFILL_KEYS = ("raw_score", "percentile")


def _check_budget(budget: int) -> None:
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")


def _unique(ids: Sequence[str], rule: str) -> list[str]:
    out = sorted(ids)
    if any(x == y for x, y in zip(out, out[1:])):
        raise ValueError(f"{rule}: ids contain duplicates; pass each record id once")
    return out


def _in_cluster_key(c: Candidate) -> tuple:
    """Score desc, then raw score desc (missing last), then id."""
    return (-c.score, -c.raw_score if c.raw_score is not None else math.inf, c.id)


def _selected(c: Candidate, rank: int, reason: str) -> Selected:
    return Selected(id=c.id, cluster=c.cluster, score=c.score, rank=rank, reason=reason,
                    ci_low=c.ci_low, ci_high=c.ci_high, raw_score=c.raw_score)


def _rank_clusters(candidates: Sequence[Candidate]) -> dict[int, list[Candidate]]:
    for c in candidates:
        if not math.isfinite(c.score) or (c.raw_score is not None and not math.isfinite(c.raw_score)):
            raise ValueError(f"candidate {c.id!r} in cluster {c.cluster} has a non-finite score "
                             f"(score={c.score!r}, raw_score={c.raw_score!r})")
    clusters: dict[int, list[Candidate]] = defaultdict(list)
    for c in candidates:
        clusters[c.cluster].append(c)
    for cluster, members in clusters.items():
        members.sort(key=_in_cluster_key)
        if len({c.id for c in members}) != len(members):
            raise ValueError(f"cluster {cluster} lists a record twice; give one candidate per (record, cluster)")
    return clusters


def _percentiles(members: list[Candidate]) -> list[float]:
    """Mid-rank percentile of each member's score in its (score-desc sorted) cluster: (lower + equal/2) / n."""
    n = len(members)
    out = [0.0] * n
    i = 0
    while i < n:  # walk runs of equal scores
        j = i
        while j < n and members[j].score == members[i].score:
            j += 1
        lower = n - j
        out[i:j] = [(lower + (j - i) / 2) / n] * (j - i)
        i = j
    return out


def select_per_cluster(candidates: Sequence[Candidate], budget: int, quota: int | str = "auto",
                       cluster_order: str = "ascending_size", backfill: bool = True,
                       backfill_key: str = "raw_score") -> list[Selected]:
    """The reference rule (§8): clusters in ascending size (ties: cluster id), top `quota` of each by score.

    Records already taken from an earlier cluster are skipped (they do not use the quota). quota "auto" =
    ceil(budget / n_clusters). Stops at `budget`. With `backfill`, a shortfall is filled with the best remaining
    records across clusters by `backfill_key`: "raw_score" (the absolute judge score, comparable across clusters)
    or "percentile" (mid-rank percentile of the score within its cluster), a record counting once with its best
    value. `rank` is the record's 0-based position in its cluster's ranking.
    """
    _check_budget(budget)
    if cluster_order not in CLUSTER_ORDERS:
        raise ValueError(f"cluster_order must be one of {CLUSTER_ORDERS}, got {cluster_order!r}")
    if backfill_key not in BACKFILL_KEYS:
        raise ValueError(f"backfill_key must be one of {BACKFILL_KEYS}, got {backfill_key!r}")
    clusters = _rank_clusters(candidates)
    if not clusters:
        return []
    if quota == "auto":
        quota = math.ceil(budget / len(clusters))
    elif not isinstance(quota, int) or isinstance(quota, bool) or quota < 0:
        raise ValueError(f"quota must be a non-negative int or 'auto', got {quota!r}")

    size_sign = {"ascending_size": 1, "descending_size": -1, "cluster_id": 0}[cluster_order]
    order = sorted(clusters, key=lambda k: (size_sign * len(clusters[k]), k))
    picked: list[Selected] = []
    taken: set[str] = set()
    for k in order:
        got = 0
        for rank, c in enumerate(clusters[k]):
            if got == quota or len(picked) == budget:
                break
            if c.id in taken:
                continue
            taken.add(c.id)
            picked.append(_selected(c, rank, f"cluster {k} top-{quota} (rank {rank})"))
            got += 1
        if len(picked) == budget:
            return picked
    if not backfill:
        return picked

    # Back-fill: each remaining record once, at its best value over clusters. By raw_score, a candidate without one
    # comes after every candidate with one, ranked by its within-cluster percentile (the stated rule; never a crash
    # and never a made-up raw score).
    best: dict[str, tuple[tuple[int, float], Candidate, int, str]] = {}
    for k in order:
        members = clusters[k]
        percentiles = _percentiles(members)
        for rank, (c, pct) in enumerate(zip(members, percentiles)):
            if backfill_key == "percentile":
                value, label = (1, pct), f"percentile={pct:.4g}"
            elif c.raw_score is not None:
                value, label = (1, c.raw_score), f"raw_score={c.raw_score:.4g}"
            else:
                value, label = (0, pct), f"no raw_score, percentile={pct:.4g}"
            if c.id not in taken and (c.id not in best or value > best[c.id][0]):
                best[c.id] = (value, c, rank, label)
    fill = sorted(best.values(), key=lambda t: (-t[0][0], -t[0][1]) + _in_cluster_key(t[1]))
    for _, c, rank, label in fill[: budget - len(picked)]:
        picked.append(_selected(c, rank, f"back-fill ({label})"))
    return picked


def select_global_top(candidates: Sequence[Candidate], budget: int) -> list[Selected]:
    """Global top-N (the README figure's rule): one value per record, its best over its clusters.

    The value is raw_score when every candidate has one (comparable across clusters), else score.
    """
    _check_budget(budget)
    have_raw = [c.raw_score is not None for c in candidates]
    if any(have_raw) and not all(have_raw):
        raise ValueError("select_global_top: raw_score is set on some candidates only; set it on all or none")
    use_raw = bool(candidates) and all(have_raw)
    for c in candidates:
        if not math.isfinite(c.score) or (use_raw and not math.isfinite(c.raw_score)):
            raise ValueError(f"candidate {c.id!r} in cluster {c.cluster} has a non-finite score "
                             f"(score={c.score!r}, raw_score={c.raw_score!r})")
    key = "raw_score" if use_raw else "score"
    rank_key = (lambda c: (-c.raw_score,) + _in_cluster_key(c)) if use_raw else _in_cluster_key
    best: dict[str, Candidate] = {}
    for c in candidates:  # a record's best membership; equal values resolved by the same full key
        if c.id not in best or rank_key(c) < rank_key(best[c.id]):
            best[c.id] = c
    ranked = sorted(best.values(), key=rank_key)
    return [_selected(c, r, f"global top-{budget} by {key} (rank {r})") for r, c in enumerate(ranked[:budget])]


def select_random(ids: Sequence[str], budget: int, seed: int) -> list[Selected]:
    """Uniform seeded sample of `budget` ids (all if fewer)."""
    _check_budget(budget)
    pool = _unique(ids, "select_random")
    sample = random.Random(seed).sample(pool, min(budget, len(pool)))
    return [Selected(id=i, cluster=None, score=None, rank=r, reason="random") for r, i in enumerate(sample)]


def select_longest(output_len: Mapping[str, int], budget: int) -> list[Selected]:
    """The long-is-more baseline: longest outputs first (ties: id)."""
    _check_budget(budget)
    ranked = sorted(output_len.items(), key=lambda kv: (-kv[1], kv[0]))[:budget]
    return [Selected(id=i, cluster=None, score=float(n), rank=r, reason="longest")
            for r, (i, n) in enumerate(ranked)]


def select_threshold_uniform(scores: Mapping[str, float], threshold: float, budget: int,
                             seed: int) -> list[Selected]:
    """AlpaGasus-style: keep score >= threshold, then a uniform seeded sample of `budget` (all if fewer).

    Output is ordered by score desc, then id; `rank` is that position.
    """
    _check_budget(budget)
    kept = sorted(i for i, s in scores.items() if s >= threshold)
    if len(kept) <= budget:
        reason = f"threshold>={threshold:g} (all {len(kept)} kept: fewer than budget {budget})"
        chosen = kept
    else:
        reason = f"threshold>={threshold:g}, uniform sample of {budget} from {len(kept)}"
        chosen = random.Random(seed).sample(kept, budget)
    chosen = sorted(chosen, key=lambda i: (-scores[i], i))
    return [Selected(id=i, cluster=None, score=float(scores[i]), rank=r, reason=reason)
            for r, i in enumerate(chosen)]


def select_all(ids: Sequence[str]) -> list[Selected]:
    """Every id, in the given order (the full-pool baseline)."""
    _unique(ids, "select_all")
    return [Selected(id=i, cluster=None, score=None, rank=r, reason="all") for r, i in enumerate(ids)]
