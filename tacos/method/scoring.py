"""Contrastive scoring maths: pair formation, judgment outcomes, position-bias checks, Bradley–Terry.

Pure functions over ids and numbers (no LLM, no I/O). The reference (method_spec §7) pairs rows adjacently in
list order, drops the last row of an odd cluster and uses each absolute judge score as is. We keep the absolute
scores (`raw_means`) for fidelity, and add a seeded shuffle, coverage of odd members, and a Bradley–Terry
aggregation so a record's score uses every comparison it took part in.
"""
from __future__ import annotations

import math
import random
import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np


def make_pairs(ids: Sequence[str], rounds: int, seed: int, salt: str = "") -> list[tuple[str, str]]:
    """Pairs to judge: per round a seeded shuffle, then adjacent pairs (0-1, 2-3, ...).

    The ids are sorted before shuffling so the pairs depend only on the set of ids, the seed, the salt (e.g. the
    cluster id) and the round. With an odd count the leftover member is paired with another member drawn by the
    same generator, so nobody goes unscored (the reference dropped it: §17.3). Fewer than two ids: no pairs.
    """
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    members = sorted(ids)
    if len(set(members)) != len(members):
        raise ValueError("make_pairs: ids contain duplicates; pass each record id once")
    if len(members) < 2:
        return []
    pairs: list[tuple[str, str]] = []
    for r in range(rounds):
        rng = random.Random(f"{seed}:{salt}:{r}")
        order = members.copy()
        rng.shuffle(order)
        pairs.extend((order[i], order[i + 1]) for i in range(0, len(order) - 1, 2))
        if len(order) % 2:
            partner = order[rng.randrange(len(order) - 1)]  # any member but the leftover itself
            pairs.append((order[-1], partner))
    return pairs


@dataclass(frozen=True)
class Judgment:
    """One judge call on an ordered pair; a None score marks an unparseable answer (excluded, but counted)."""

    first: str  # record id presented first
    second: str
    score_first: float | None
    score_second: float | None

    @property
    def valid(self) -> bool:
        return self.score_first is not None and self.score_second is not None


def _result(j: Judgment, tie_margin: float) -> float:
    """1.0 if the first-presented record wins, 0.5 tie, 0.0 if the second wins."""
    diff = j.score_first - j.score_second  # type: ignore[operator]
    if abs(diff) <= tie_margin:
        return 0.5
    return 1.0 if diff > 0 else 0.0


def outcomes(judgments: Iterable[Judgment], tie_margin: float = 0.0) -> list[tuple[str, str, float]]:
    """(a, b, result) per valid judgment, a = first presented; result 1.0 a wins, 0.5 tie, 0.0 b wins."""
    if tie_margin < 0:
        raise ValueError(f"tie_margin must be >= 0, got {tie_margin}")
    return [(j.first, j.second, _result(j, tie_margin)) for j in judgments if j.valid]


def order_consistency(judgments: Iterable[Judgment], tie_margin: float = 0.0) -> dict:
    """Position-bias diagnostics.

    consistency: over pairs judged in both orders, the fraction whose two judgments name the same winner (tie
    and tie agree). When a pair was judged several times per order, the i-th judgment in one order is matched with
    the i-th in the other. None when no pair was judged in both orders.
    first_position_win_rate: among valid, non-tied judgments, how often the first-presented record won (0.5 for
    an unbiased judge on shuffled pairs; 1.0 for a judge that always prefers the first). None if all tied.
    """
    judgments = list(judgments)
    valid = [j for j in judgments if j.valid]
    by_order: dict[tuple[str, str], list[float]] = defaultdict(list)
    for j in valid:
        by_order[(j.first, j.second)].append(_result(j, tie_margin))
    n_both = agree = 0
    for (a, b), forward in by_order.items():
        if a > b:  # visit each unordered pair once, from its lexically smaller first member
            continue
        for res_ab, res_ba in zip(forward, by_order.get((b, a), [])):
            n_both += 1
            agree += res_ab == 1.0 - res_ba  # the same winner seen from the other side
    results = [_result(j, tie_margin) for j in valid]
    first_wins = sum(r == 1.0 for r in results)
    decisive = sum(r != 0.5 for r in results)
    return {
        "consistency": agree / n_both if n_both else None,
        "n_pairs_both_orders": n_both,
        "first_position_win_rate": first_wins / decisive if decisive else None,
        "tie_rate": (len(results) - decisive) / len(results) if results else None,
        "n_judgments": len(judgments),
        "n_invalid": len(judgments) - len(valid),
    }


def _index_comparisons(ids: Sequence[str], comparisons: Sequence[tuple[str, str, float]]):
    pos = {i: k for k, i in enumerate(ids)}
    if len(pos) != len(ids):
        raise ValueError("bradley_terry: ids contain duplicates")
    try:
        a = np.fromiter((pos[c[0]] for c in comparisons), dtype=np.int64, count=len(comparisons))
        b = np.fromiter((pos[c[1]] for c in comparisons), dtype=np.int64, count=len(comparisons))
    except KeyError as e:
        raise ValueError(f"bradley_terry: comparison names id {e.args[0]!r}, which is not in ids") from None
    res = np.fromiter((c[2] for c in comparisons), dtype=np.float64, count=len(comparisons))
    if np.any(a == b):
        raise ValueError("bradley_terry: a record cannot be compared with itself")
    if np.any(~np.isfinite(res)) or np.any((res < 0) | (res > 1)):
        raise ValueError("bradley_terry: results must lie in [0, 1] (1 first wins, 0.5 tie, 0 second wins)")
    return a, b, res


def _fit(n: int, a: np.ndarray, b: np.ndarray, res: np.ndarray, prior: float, max_iter: int, tol: float,
         init: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """MM iterations (Hunter 2004) for the (penalised) maximum likelihood: (raw log-strengths, converged).

    MM rather than Newman's (2023) faster fixed point: the latter oscillated on sparse bootstrap resamples,
    while MM increases the likelihood at every step. It is slow when strengths are far apart (up to ~2,500
    iterations on dense synthetic designs), hence the generous max_iter defaults. `prior` virtual ties against a
    fixed reference of strength 1 add prior/2 wins and `prior` games to every item. Items without comparisons
    stay at 0.
    """
    def total(w_first: np.ndarray | None, w_second: np.ndarray | None) -> np.ndarray:
        # Per-item sum over comparisons: `w_first` where it was presented first, `w_second` where second.
        return (np.bincount(a, weights=w_first, minlength=n)
                + np.bincount(b, weights=w_second, minlength=n)).astype(np.float64)

    wins = total(res, 1.0 - res) + prior / 2  # ties are half a win for each side
    seen = total(None, None) > 0
    p = np.exp(init) if init is not None else np.ones(n)
    step = math.inf if n else 0.0
    for _ in range(max_iter):
        inv = 1.0 / (p[a] + p[b])
        denom = total(inv, inv) + prior / (p + 1.0)  # p_i <- W_i / sum_games 1/(p_i + p_opponent)
        new = np.where(seen, wins / np.where(seen, denom, 1.0), 1.0)
        if prior == 0:  # no anchor: fix the scale by the geometric mean of the compared items
            new[seen] /= np.exp(np.log(new[seen]).mean())
        step = float(np.max(np.abs(np.log(new) - np.log(p)))) if n else 0.0
        p = new
        if step < tol:
            break
    return np.log(p), step < tol


def _warn_unconverged(what: str, max_iter: int) -> None:
    warnings.warn(f"Bradley–Terry: {what} did not converge in max_iter={max_iter} iterations; raise max_iter",
                  RuntimeWarning, stacklevel=3)


def _check_mle_exists(n: int, a: np.ndarray, b: np.ndarray, res: np.ndarray) -> None:
    """Without a prior the MLE is finite only if every compared item beat, and lost to, items of its component."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    # Edge loser -> winner for every (partial) win; strongly connected within each weak component <=> finite MLE.
    src = np.concatenate([b[res > 0], a[res < 1]])
    dst = np.concatenate([a[res > 0], b[res < 1]])
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    seen = np.zeros(n, dtype=bool)
    seen[a] = seen[b] = True
    weak = connected_components(graph, directed=True, connection="weak")[1]
    strong = connected_components(graph, directed=True, connection="strong")[1]
    # Each strong component lies inside one weak component: equal counts <=> every weak one is strongly connected.
    if len(set(strong[seen].tolist())) != len(set(weak[seen].tolist())):
        raise ValueError("bradley_terry with prior=0: some record won (or lost) all its comparisons, so its "
                         "strength is infinite; use prior > 0")


def _centre(theta: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Centre on the mean of compared items; items never compared get that mean, i.e. exactly 0."""
    seen = np.zeros(len(theta), dtype=bool)
    seen[a] = True
    seen[b] = True
    out = np.zeros_like(theta)
    if seen.any():
        out[seen] = theta[seen] - theta[seen].mean()
    return out


def bradley_terry(ids: Sequence[str], comparisons: Sequence[tuple[str, str, float]], prior: float = 1.0,
                  max_iter: int = 10_000, tol: float = 1e-9) -> dict[str, float]:
    """Bradley–Terry log-strengths, centred at 0, from (a, b, result) comparisons (ties = half-wins).

    `prior` = number of virtual tied comparisons of every item with a fixed reference item; it keeps strengths
    finite for records that won (or lost) every comparison and shrinks thinly compared records towards the mean.
    Records without comparisons get exactly 0 (the mean).
    """
    if prior < 0:
        raise ValueError(f"prior must be >= 0, got {prior}")
    a, b, res = _index_comparisons(ids, comparisons)
    if prior == 0:
        _check_mle_exists(len(ids), a, b, res)
    theta, converged = _fit(len(ids), a, b, res, prior, max_iter, tol)
    if not converged:
        _warn_unconverged("the fit", max_iter)
    theta = _centre(theta, a, b)
    return dict(zip(ids, theta.tolist()))


def bradley_terry_ci(ids: Sequence[str], comparisons: Sequence[tuple[str, str, float]], n_boot: int = 200,
                     seed: int = 0, level: float = 0.95, prior: float = 1.0, max_iter: int = 10_000,
                     tol: float = 1e-7) -> dict[str, tuple[float, float, float]]:
    """id -> (estimate, lo, hi): percentile bootstrap over comparisons (resampled with replacement, seeded).

    A replicate that happens to contain no comparison of a record gives it the mean (0). The interval is widened
    where needed to contain the estimate (a skewed bootstrap distribution can leave it outside).
    """
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got n_boot={n_boot}, level={level}")
    if prior <= 0:  # resamples routinely leave a record with only wins, whose MLE is infinite
        raise ValueError(f"bradley_terry_ci needs prior > 0, got {prior}")
    a, b, res = _index_comparisons(ids, comparisons)
    raw, converged = _fit(len(ids), a, b, res, prior, max_iter, tol)
    est = _centre(raw, a, b)
    boots = np.zeros((n_boot, len(ids)))
    failed = 0 if converged else 1
    if len(res):
        rng = np.random.default_rng(seed)
        for k in range(n_boot):
            pick = rng.integers(0, len(res), len(res))
            # Warm start from the full-data fit: a nearby fixed point, far fewer iterations.
            theta, converged = _fit(len(ids), a[pick], b[pick], res[pick], prior, max_iter, tol, init=raw)
            boots[k] = _centre(theta, a[pick], b[pick])
            failed += not converged
    if failed:
        _warn_unconverged(f"{failed} of {n_boot + 1} fits (full data + bootstrap)", max_iter)
    lo = np.minimum(np.quantile(boots, (1 - level) / 2, axis=0), est)
    hi = np.maximum(np.quantile(boots, (1 + level) / 2, axis=0), est)
    return {i: (float(e), float(l), float(h)) for i, e, l, h in zip(ids, est, lo, hi)}


def raw_means(judgments: Iterable[Judgment]) -> dict[str, float]:
    """The reference's number: mean absolute judge score a record got over its valid judgments (any position).

    Records without a valid judgment are absent.
    """
    total: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for j in judgments:
        if not j.valid:
            continue
        for rid, s in ((j.first, j.score_first), (j.second, j.score_second)):
            if not math.isfinite(s):  # type: ignore[arg-type]
                raise ValueError(f"raw_means: non-finite score {s!r} for record {rid!r}")
            total[rid] += s  # type: ignore[operator]
            count[rid] += 1
    return {rid: total[rid] / count[rid] for rid in total}
