"""Win / tie / lose statistics of pairwise judging (pure, no I/O).

A question's verdict is read from our side and comes from the pair judge's two presentation orders, combined by the
reference rule (tacos.judges.orders). Score = (win - lose) / n + 1, in [0, 2]; 1 means "as good as the baseline",
with a seeded percentile bootstrap 95 % CI over questions. A question whose judge answer was not valid in an order is
`invalid`: counted, never turned into a tie (the original's [-1, -1]).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tacos.judges.orders import VERDICTS

_VALUE = {"win": 1.0, "tie": 0.0, "lose": -1.0}


def outcome_word(p_ours: float | None) -> str | None:
    """A verdict's P(ours better) as a word: 1 win, 0.5 tie, 0 lose (a soft preference: the side above 0.5)."""
    if p_ours is None:
        return None
    return "win" if p_ours > 0.5 else "lose" if p_ours < 0.5 else "tie"


def bootstrap_score_ci(values: Sequence[float], n_boot: int, seed: int | Sequence[int],
                       level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile bootstrap over questions of score = mean(+1 win / 0 tie / -1 lose) + 1; (None, None) if empty."""
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got n_boot={n_boot}, level={level}")
    v = np.asarray(values, dtype=float)
    if not len(v):
        return None, None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1) + 1.0
    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))


def pairwise_summary(verdicts: Sequence[tuple[str | None, str | None, str | None]], n_boot: int = 1000,
                     seed: int | Sequence[int] = 0) -> dict:
    """Win/tie/lose over questions from their (ours-first, baseline-first, combined) verdicts, each from our side.

    Returns {"win","tie","lose","n","score","ci_low","ci_high","consistency","invalid"}: n counts valid questions
    (a combined verdict), invalid the others; consistency = share of valid questions whose two orders agree.
    score / ci / consistency are None when n == 0.
    """
    valid = [(a, b, c) for a, b, c in verdicts if c is not None]
    unknown = {c for _, _, c in valid} - set(VERDICTS)
    if unknown:
        raise ValueError(f"verdicts must be one of {VERDICTS} or None, got {sorted(unknown)}")
    counts = {v: sum(c == v for _, _, c in valid) for v in VERDICTS}
    n = len(valid)
    lo, hi = bootstrap_score_ci([_VALUE[c] for _, _, c in valid], n_boot, seed)
    return {**counts, "n": n,
            "score": _r((counts["win"] - counts["lose"]) / n + 1) if n else None,
            "ci_low": _r(lo), "ci_high": _r(hi),
            "consistency": _r(sum(a == b for a, b, _ in valid) / n) if n else None,
            "invalid": len(verdicts) - n}


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)
