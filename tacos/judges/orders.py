"""Two presentation orders -> one verdict: written once, for every judge that sees two responses side by side.

Text judgments (the reference rule of AlpaGasus / long-is-more, method_spec §2.7): each order gives two scores; the
verdict of an order is read from the first record's side (strictly higher wins, equal ties, `tie_margin` widens
ties), and the two orders combine as
    win  = win+win  or win+tie        tie = tie+tie or win+lose        lose = lose+lose or lose+tie
Log-probability judgments: the log-odds of "first is better" are `s + d` with a first and `-s + d` with b first, so
`s = (l_ab - l_ba) / 2` cancels the judge's pull `d` towards a position exactly, and sigmoid(s) is P(a better).
"""
from __future__ import annotations

import math

VERDICTS = ("win", "tie", "lose")
_COMBINED = {
    ("win", "win"): "win", ("win", "tie"): "win", ("tie", "win"): "win",
    ("tie", "tie"): "tie", ("win", "lose"): "tie", ("lose", "win"): "tie",
    ("lose", "lose"): "lose", ("lose", "tie"): "lose", ("tie", "lose"): "lose",
}
P_OF = {"win": 1.0, "tie": 0.5, "lose": 0.0}
FLIP = {"win": "lose", "lose": "win", "tie": "tie", None: None}


def verdict(ours: float, theirs: float, tie_margin: float = 0.0) -> str:
    """One order's verdict from one side: a higher score wins, a difference within `tie_margin` ties."""
    if tie_margin < 0:
        raise ValueError(f"tie_margin must be >= 0, got {tie_margin}")
    diff = ours - theirs
    return "tie" if abs(diff) <= tie_margin else "win" if diff > 0 else "lose"


def combine(first_order: str | None, second_order: str | None) -> str | None:
    """The verdict from both orders, each read from the SAME side (e.g. ours when ours was first, ours when ours was
    second); None when an order has no valid answer (never turned into a tie)."""
    if first_order is None or second_order is None:
        return None
    try:
        return _COMBINED[(first_order, second_order)]
    except KeyError:
        raise ValueError(f"verdicts must be one of {VERDICTS} or None, got {(first_order, second_order)}") from None


def text_outcome(score_first: float, score_second: float, tie_margin: float = 0.0) -> float:
    """1.0 when the first-presented record wins, 0.5 tie, 0.0 when the second wins (one order, for a ranking)."""
    return P_OF[verdict(score_first, score_second, tie_margin)]


def debias(logit_ab: float, logit_ba: float) -> tuple[float, float]:
    """(P(a beats b), position offset d) from the log-odds of "the first is better" in the two orders."""
    s = (logit_ab - logit_ba) / 2.0
    d = (logit_ab + logit_ba) / 2.0
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, s)))), d


def position_stats(orders: list[tuple[dict, dict]]) -> dict:
    """Diagnostics over pairs judged in both orders; each order dict holds `first_won` (True / False / None: tie or
    invalid) and, for log-probability read-outs, `logit` and `answer_mass`.

    consistency: the two orders name the same winner (decided orders only); first_position_rate: how often the
    first-presented response wins a decided order; mean_position_offset / mean_abs_preference: the log-odds pull
    towards the first position that debiasing removes, and the mean |s| left (near 0: the judge expresses nothing);
    mean_answer_mass: the probability the judge put on the answer tokens before any constraint."""
    both = [(x, y) for x, y in orders if x.get("first_won") is not None and y.get("first_won") is not None]
    decided = [o["first_won"] for pair in orders for o in pair if o.get("first_won") is not None]
    logits = [(x["logit"], y["logit"]) for x, y in orders if x.get("logit") is not None and y.get("logit") is not None]
    masses = [o["answer_mass"] for pair in orders for o in pair if o.get("answer_mass") is not None]
    return {
        "n_pairs_both_orders": len(both),
        "consistency": _mean([x["first_won"] != y["first_won"] for x, y in both]),
        "first_position_win_rate": _mean(decided),
        "mean_position_offset": _mean([(a + b) / 2 for a, b in logits]),
        "mean_abs_preference": _mean([abs(a - b) / 2 for a, b in logits]),
        "mean_answer_mass": _mean(masses),
    }


def _mean(xs: list) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None
