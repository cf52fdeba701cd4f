"""Contrastive scoring maths: pair formation, judgment outcomes, position-bias checks, position-debiased soft
outcomes from log-probabilities. Pure functions over ids and numbers (no LLM, no I/O); the Bradley-Terry fit is in
tacos.method.bradley_terry.

The reference (method_spec §7) pairs rows adjacently in list order, drops the last row of an odd cluster and uses each absolute judge score as is. We keep the absolute
scores (`raw_means`) for fidelity, and add a seeded shuffle, coverage of odd members, and a Bradley–Terry
aggregation so a record's score uses every comparison it took part in.
"""
from __future__ import annotations

import math
import random
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


# -- position-debiased soft outcomes from first-token log-probabilities -----------------------------------------------
def preference_logit(top_logprobs: dict[str, float], first: str = "1", second: str = "2",
                     floor: float = -30.0) -> float | None:
    """log P(first token) - log P(second token) at the answer position; a token missing from the top-k list counts
    as `floor` (far below anything listed). None when neither token is listed: no preference was expressed."""
    l1, l2 = top_logprobs.get(first), top_logprobs.get(second)
    if l1 is None and l2 is None:
        return None
    return (floor if l1 is None else l1) - (floor if l2 is None else l2)


def debias(logit_ab: float, logit_ba: float) -> tuple[float, float]:
    """(P(a beats b), position offset) from the two presentation orders of one pair.

    With a judge whose log-odds of choosing the first-presented response are `s + d` when a is first and `-s + d`
    when b is first (s: the judge's preference for a, d: its pull towards a position), the difference of the two
    orders cancels d exactly: s = (logit_ab - logit_ba) / 2, d = (logit_ab + logit_ba) / 2. The soft outcome
    sigmoid(s) is what the Bradley-Terry fit uses (a tie-free "fractional win")."""
    s = (logit_ab - logit_ba) / 2.0
    d = (logit_ab + logit_ba) / 2.0
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, s)))), d


def expected_score(top_logprobs: dict[str, float], values: dict[str, float]) -> float | None:
    """The judge's expected score: sum of value x P(token) over the scale's tokens, renormalised over those tokens.
    None when no scale token is among the listed ones."""
    probs = {tok: math.exp(lp) for tok, lp in top_logprobs.items() if tok in values}
    total = sum(probs.values())
    if total <= 0:
        return None
    return sum(values[tok] * p for tok, p in probs.items()) / total


def first_token_logprobs(logprobs: list | None) -> dict[str, float]:
    """token -> logprob at the first generated position, from a result's `logprobs` (the chosen token and the top
    list). Forms that differ only by surrounding spaces (" 1", "1") are one answer: their probabilities add up."""
    if not logprobs or not isinstance(logprobs[0], dict):
        return {}
    first = logprobs[0]
    raw: dict[str, float] = {}
    for t in [first, *(first.get("top_logprobs") or [])]:
        if isinstance(t, dict) and t.get("logprob") is not None:
            raw.setdefault(str(t.get("token", "")), float(t["logprob"]))  # the chosen token is also in the list
    out: dict[str, float] = {}
    for tok, lp in raw.items():
        key = tok.strip()
        out[key] = lp if key not in out else float(np.logaddexp(out[key], lp))
    return out
