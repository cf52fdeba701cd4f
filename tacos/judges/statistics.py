"""The few statistics `tacos judge-eval` and the gate rest on: intervals for proportions, AUC with its interval, and
the paired one-sided tests "is the judge better than that trivial rule on the same items?".

    wilson(successes, n)           Wilson 95 % score interval of a proportion (sound at 0 and 1, unlike a percentile
                                   bootstrap, which reads 1.00 [1.00, 1.00] on 55 items all right)
    sign_flip_p(diffs)             exact one-sided paired randomisation test of mean(diffs) > 0 for per-item agreement
                                   differences (multiples of 0.5): with no half points it is the exact McNemar test
    auc(scores, labels), delong    AUC of a score against binary labels and DeLong's variance; a missing score ties
    delong_paired_p(a, b, labels)  one-sided DeLong test of AUC(a) > AUC(b) on the same items
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson(successes: float, n: int, z: float = Z95) -> list[float] | None:
    """[low, high] of the Wilson score interval. `successes` may be fractional (ties count half): the interval is
    then slightly conservative (a half point has less variance than a coin flip)."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denom
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def sign_flip_p(diffs: Sequence[float]) -> float:
    """P(mean >= observed) when each item's difference is equally likely to have either sign (H0: exchangeable
    judge and rung). Exact, by convolving the items' two-point distributions (no sampling, no seed). Items with
    difference 0 (both right, both wrong, both tied) carry no information, as in McNemar's test."""
    steps = [round(2 * abs(d)) for d in diffs]
    if any(abs(2 * abs(d) - s) > 1e-9 for d, s in zip(diffs, steps)):
        raise ValueError("sign_flip_p needs differences in multiples of 0.5 (agreements 0 / 0.5 / 1)")
    total = sum(steps)
    observed = round(2 * sum(diffs))
    dist = np.zeros(2 * total + 1)
    dist[total] = 1.0  # index = sum + total
    for s in (s for s in steps if s):
        dist = 0.5 * (np.roll(dist, s) + np.roll(dist, -s))  # never wraps: |sum| <= total
    return float(min(1.0, dist[observed + total:].sum()))


def _binary(labels: Sequence[float]) -> np.ndarray:
    values = sorted(set(labels))
    if len(values) != 2:
        raise ValueError(f"AUC needs exactly two label values, got {values[:5]}")
    return np.asarray([x == values[1] for x in labels])


def _placements(scores: Sequence[float | None], positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: for each positive, the share of negatives it beats (ties and missing scores
    count half); for each negative, the share of positives that beat it."""
    x = np.asarray([np.nan if s is None else s for s in scores], dtype=float)
    pos, neg = x[positive], x[~positive]
    p, q = pos[:, None], neg[None, :]
    psi = np.where(np.isnan(p) | np.isnan(q), 0.5, (p > q) + 0.5 * (p == q))
    return psi.mean(axis=1), psi.mean(axis=0)


def auc(scores: Sequence[float | None], labels: Sequence[float]) -> float | None:
    """P(a positive item scores above a negative one); the positive class is the higher label."""
    positive = _binary(labels)
    if positive.all() or not positive.any():
        return None
    v10, _ = _placements(scores, positive)
    return round(float(v10.mean()), 4)


def auc_ci(scores: Sequence[float | None], labels: Sequence[float], z: float = Z95) -> list[float] | None:
    """DeLong 95 % interval of the AUC (clipped to [0, 1]); None with fewer than 2 items of a class."""
    positive = _binary(labels)
    if positive.sum() < 2 or (~positive).sum() < 2:
        return None
    v10, v01 = _placements(scores, positive)
    a = float(v10.mean())
    se = math.sqrt(v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01))
    return [round(max(0.0, a - z * se), 4), round(min(1.0, a + z * se), 4)]


def delong_paired_p(a: Sequence[float | None], b: Sequence[float | None], labels: Sequence[float]) -> float | None:
    """One-sided p of AUC(a) > AUC(b) on the same items (DeLong, DeLong & Clarke-Pearson 1988): the normal
    approximation to the difference with the covariance of the two AUCs."""
    positive = _binary(labels)
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        return None
    (a10, a01), (b10, b01) = _placements(a, positive), _placements(b, positive)
    diff = a10.mean() - b10.mean()
    var = np.cov(a10 - b10, ddof=1) / m + np.cov(a01 - b01, ddof=1) / n
    if var <= 1e-15:
        return 0.0 if diff > 0 else 1.0
    return float(0.5 * math.erfc(diff / math.sqrt(var) / math.sqrt(2)))
