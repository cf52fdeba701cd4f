"""Judging logic, no I/O: pairwise verdicts and their both-order combination, win/tie/lose statistics with a
bootstrap CI, and MT-Bench single-answer grading in FastChat llm_judge's prompts and judgment-row format.

Pairwise protocol (method_spec §2.7, §14.1): every question is judged twice, our answer first and then the
baseline's first; each call gives two 1-10 scores on its first line. Per order the verdict is taken from our side;
the two orders combine by the reference rule (AlpaGasus / long-is-more):
    win  = win+win  or win+tie        tie = tie+tie or win+lose        lose = lose+lose or lose+tie
A question with an unparsable order is invalid: counted, never turned into a tie (the original's [-1, -1]).
Score = (win - lose) / n + 1, in [0, 2]; 1 means "as good as the baseline".
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tacos.llm.parsing import ParseError, parse_rating_brackets, parse_two_scores_line
from tacos.prompts import render  # re-exported: the one template function, used for the pairwise prompt

__all__ = ["VERDICTS", "NEED_REF_CATS", "MT_BENCH_CATEGORIES", "ParseError", "verdict", "combine",
           "pairwise_summary", "bootstrap_score_ci", "parse_pairwise_scores", "parse_mt_bench_rating", "render",
           "mt_bench_prompt_name", "mt_bench_user_prompt", "fastchat_single_row", "MTBenchItem", "mt_bench_summary"]

VERDICTS = ("win", "tie", "lose")
# FastChat llm_judge.common.NEED_REF_CATS: these categories are graded against GPT-4 reference answers.
NEED_REF_CATS = ("math", "reasoning", "coding", "arena-hard-200")
# The order FastChat's MT-Bench leaderboard and radar plots use.
MT_BENCH_CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")

_COMBINED = {
    ("win", "win"): "win", ("win", "tie"): "win", ("tie", "win"): "win",
    ("tie", "tie"): "tie", ("win", "lose"): "tie", ("lose", "win"): "tie",
    ("lose", "lose"): "lose", ("lose", "tie"): "lose", ("tie", "lose"): "lose",
}
_VALUE = {"win": 1.0, "tie": 0.0, "lose": -1.0}


# -- pairwise ------------------------------------------------------------------------------------------------------
def verdict(ours: float, baseline: float) -> str:
    """One order's verdict from our side: strictly higher score wins, equal scores tie (as the reference)."""
    return "win" if ours > baseline else "lose" if ours < baseline else "tie"


def combine(ours_first: str | None, baseline_first: str | None) -> str | None:
    """The question's verdict from its two orders (each "win"/"tie"/"lose" from our side, None = invalid order)."""
    if ours_first is None or baseline_first is None:
        return None
    try:
        return _COMBINED[(ours_first, baseline_first)]
    except KeyError:
        raise ValueError(f"verdicts must be one of {VERDICTS} or None, got {(ours_first, baseline_first)}") from None


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


def pairwise_summary(orders: Sequence[tuple[str | None, str | None]], n_boot: int = 1000,
                     seed: int | Sequence[int] = 0) -> dict:
    """Win/tie/lose over questions from their (ours-first, baseline-first) verdicts.

    Returns {"win","tie","lose","n","score","ci_low","ci_high","consistency","invalid"}: n counts valid questions
    (both orders parsed), invalid the others; consistency = share of valid questions whose two orders agree.
    score / ci / consistency are None when n == 0.
    """
    combined = [(a, b, combine(a, b)) for a, b in orders]
    valid = [(a, b, c) for a, b, c in combined if c is not None]
    counts = {v: sum(c == v for _, _, c in valid) for v in VERDICTS}
    n = len(valid)
    lo, hi = bootstrap_score_ci([_VALUE[c] for _, _, c in valid], n_boot, seed)
    return {**counts, "n": n,
            "score": _r((counts["win"] - counts["lose"]) / n + 1) if n else None,
            "ci_low": _r(lo), "ci_high": _r(hi),
            "consistency": _r(sum(a == b for a, b, _ in valid) / n) if n else None,
            "invalid": len(combined) - n}


def parse_pairwise_scores(raw: str) -> tuple[float, float]:
    """The judge's first line: two 1-10 scores, Assistant 1's then Assistant 2's ("8 7" or "8, 7")."""
    return parse_two_scores_line(raw, 1, 10)


# -- MT-Bench single-answer grading (FastChat llm_judge) ------------------------------------------------------------
_DOUBLE_BRACKETS = re.compile(r"\[\[\s*-?\d")
_FASTCHAT_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")  # FastChat's one_score_pattern_backup


def parse_mt_bench_rating(raw: str) -> float:
    """FastChat's rule: the first "[[x]]", else (its backup pattern) the first "[x]"; the rating must lie in 1-10.
    Anything else raises ParseError (the client re-asks, then the judgment is invalid: -1 in FastChat's file)."""
    if _DOUBLE_BRACKETS.search(raw):
        return parse_rating_brackets(raw, 1, 10)
    m = _FASTCHAT_BACKUP.search(raw)
    if m is None:
        raise ParseError(f"no [[rating]] or [rating] found in {raw[:120]!r}")
    rating = float(m.group(1))
    if not 1 <= rating <= 10:
        raise ParseError(f"rating {rating} is outside [1, 10] in {raw[:120]!r}")
    return rating


def mt_bench_prompt_name(category: str, turn: int) -> str:
    """Which FastChat judge prompt grades this turn: reference-guided for NEED_REF_CATS, multi-turn for turn 2."""
    if turn not in (1, 2):
        raise ValueError(f"MT-Bench turn must be 1 or 2, got {turn}")
    base = "single-math-v1" if category in NEED_REF_CATS else "single-v1"
    return base + ("-multi-turn" if turn == 2 else "")


def mt_bench_user_prompt(prompt: dict, questions: Sequence[str], answers: Sequence[str],
                         reference: Sequence[str] | None, turn: int) -> str:
    """The judge's user message, built exactly as FastChat's `run_judge_single` (str.format of the template)."""
    kwargs = {}
    if reference is not None:
        kwargs["ref_answer_1"] = reference[0]
        if turn == 2:
            kwargs["ref_answer_2"] = reference[1]
    if turn == 2:
        return prompt["prompt_template"].format(question_1=questions[0], question_2=questions[1],
                                                answer_1=answers[0], answer_2=answers[1], **kwargs)
    return prompt["prompt_template"].format(question=questions[0], answer=answers[0], **kwargs)


def fastchat_single_row(question_id: int | str, model: str, judge_model_name: str, prompt_name: str,
                        user_prompt: str, judgment: str, score: float | None, turn: int, tstamp: float) -> dict:
    """One line of FastChat's `model_judgment/<judge>_single.jsonl`; an invalid rating is FastChat's -1
    (show_result drops those rows)."""
    return {"question_id": question_id, "model": model, "judge": [judge_model_name, prompt_name],
            "user_prompt": user_prompt, "judgment": judgment, "score": -1 if score is None else score,
            "turn": turn, "tstamp": tstamp}


@dataclass(frozen=True)
class MTBenchItem:
    """One expected judgment (question x turn); score None when it is not valid, `problem` says why."""

    question_id: str
    category: str
    turn: int
    score: float | None
    problem: str = ""  # e.g. "no answer", "invalid rating"


def mt_bench_summary(items: Sequence[MTBenchItem], max_listed: int = 10) -> dict:
    """Turn-1, turn-2 and overall means and per-category means, each reported only when every judgment it
    averages is valid (a mean over a subset is not an MT-Bench score: method_spec §14.2, the 80/160 file).

    Returns {"turn1","turn2","overall","n_valid","n_expected","complete","per_category","message"}.
    """
    def mean_if_complete(group: list[MTBenchItem]) -> float | None:
        if not group or any(i.score is None for i in group):
            return None
        return _r(sum(i.score for i in group) / len(group))

    by_cat: dict[str, list[MTBenchItem]] = defaultdict(list)
    for i in items:
        by_cat[i.category].append(i)
    order = [c for c in MT_BENCH_CATEGORIES if c in by_cat] + sorted(set(by_cat) - set(MT_BENCH_CATEGORIES))
    bad = [i for i in items if i.score is None]
    n_valid = len(items) - len(bad)
    complete = bool(items) and not bad
    if complete:
        message = f"complete: {n_valid}/{len(items)} judgments valid"
    elif not items:
        message = "no MT-Bench judgment was expected (no questions)"
    else:
        listed = ", ".join(f"q{i.question_id} turn {i.turn} ({i.problem or 'invalid'})" for i in bad[:max_listed])
        more = f" and {len(bad) - max_listed} more" if len(bad) > max_listed else ""
        message = (f"overall MT-Bench score withheld: only {n_valid}/{len(items)} judgments are valid. "
                   f"Not valid: {listed}{more}. Re-run the judge (answered calls are cached; add "
                   f"client.retry_invalid=true to re-ask invalid ones) or complete the answers with infer.")
    return {"turn1": mean_if_complete([i for i in items if i.turn == 1]),
            "turn2": mean_if_complete([i for i in items if i.turn == 2]),
            "overall": mean_if_complete(list(items)),
            "n_valid": n_valid, "n_expected": len(items), "complete": complete,
            "per_category": {c: mean_if_complete(by_cat[c]) for c in order},
            "message": message}


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)
