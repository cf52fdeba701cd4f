"""How well does a judge agree with labels? The numbers `tacos judge-eval` reports (alpaca_eval's evaluator
leaderboard columns), for ANY judge object: pair judges on preference pairs, rating judges on pairs (the higher
rating wins) or on labelled ratings (rank correlation).

Agreement with a pair's label is 1 - |prediction - label| on the 1 / 1.5 / 2 scale (ties count half), with a seeded
bootstrap 95 % CI; next to it what two trivial judges get on the same pairs: always the longer output
(`baseline_longer`) and always output_1 (`baseline_first`). The judge's own diagnostics (order consistency,
first-position rate, answer-token mass, position offset) come from the judge (PairJudge.diagnostics).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tacos.data.preference_pairs import PreferencePair, SingleRating
from tacos.judges.base import JudgeContext, PairVerdict
from tacos.judges.combined import as_pair_judge
from tacos.records import Record


@dataclass(frozen=True)
class PairJudgment:
    """One labelled pair after the judge: `pred` 1 / 1.5 / 2, or None when the judge gave no valid verdict."""

    id: str
    subset: str
    label: float
    pred: float | None
    p_output_1: float | None  # P(output_1 better) as the judge says
    longer: float  # 1 / 2: the longer output, 1.5: equal length
    reason: str = ""


def judge_pairs(judge, pairs: Sequence[PreferencePair], ctx: JudgeContext) -> tuple[list[PairJudgment], list]:
    """(one PairJudgment per pair, the verdicts) from `judge` (a rating judge is compared pair by pair)."""
    judge = as_pair_judge(judge)
    verdicts = judge.judge_pairs([p.records() for p in pairs], ctx)
    out = []
    for p, v in zip(pairs, verdicts):
        longer = 1.0 if len(p.output_1) > len(p.output_2) else 2.0 if len(p.output_1) < len(p.output_2) else 1.5
        pred = None if v.p_first is None else 1.0 if v.p_first > 0.5 else 2.0 if v.p_first < 0.5 else 1.5
        out.append(PairJudgment(p.id, p.subset, p.preference, pred, v.p_first, longer, v.reason))
    return out, verdicts


def mean_ci(values: list[float], n_boot: int, seed: int) -> tuple[float | None, list[float] | None]:
    if not values:
        return None, None
    v = np.asarray(values, dtype=float)
    means = v[np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    return round(float(v.mean()), 4), [round(float(np.quantile(means, 0.025)), 4),
                                       round(float(np.quantile(means, 0.975)), 4)]


def _agreement(pred: float, label: float) -> float:
    return 1.0 - abs(pred - label)


def _rate(xs: list[bool]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def pair_metrics(judgments: list[PairJudgment], verdicts: list[PairVerdict], judge, n_boot: int = 1000,
                 seed: int = 0) -> dict:
    """The leaderboard columns over `judgments` (one subset or all), plus the judge's own diagnostics."""
    valid = [j for j in judgments if j.pred is not None]
    agreement, ci = mean_ci([_agreement(j.pred, j.label) for j in valid], n_boot, seed)
    unequal = [j for j in valid if j.pred != 1.5 and j.longer != 1.5]
    return {
        "n": len(judgments), "n_valid": len(valid), "agreement": agreement, "agreement_ci": ci,
        "prefers_longer_rate": _rate([j.pred == j.longer for j in unequal]),
        "tie_rate": _rate([j.pred == 1.5 for j in valid]),
        "invalid_rate": _rate([j.pred is None for j in judgments]),
        "baseline_longer": mean_ci([_agreement(j.longer, j.label) for j in judgments], 1, seed)[0],
        "baseline_first": mean_ci([_agreement(1.0, j.label) for j in judgments], 1, seed)[0],
        **as_pair_judge(judge).diagnostics(verdicts),
    }


def pair_metrics_by_subset(judgments: list[PairJudgment], verdicts: list[PairVerdict], judge, n_boot: int,
                           seed: int) -> dict[str, dict]:
    groups: dict[str, list[int]] = defaultdict(list)
    for k, j in enumerate(judgments):
        groups[j.subset].append(k)
    out = {s: pair_metrics([judgments[k] for k in idx], [verdicts[k] for k in idx], judge, n_boot, seed)
           for s, idx in sorted(groups.items())}
    out["overall"] = pair_metrics(judgments, verdicts, judge, n_boot, seed)
    return out


def rating_records(items: Sequence[SingleRating]) -> list[Record]:
    return [Record.make(k, r.instruction, r.input, r.output, source=r.id) for k, r in enumerate(items)]


def rating_metrics(labels: list[float], scores: list[float | None], lengths: list[int]) -> dict:
    """Spearman and Pearson of the judge's ratings against the labels (invalid ratings left out), and what length
    alone correlates (`baseline_length_spearman`)."""
    from scipy.stats import pearsonr, spearmanr

    pairs = [(x, y) for x, y in zip(scores, labels) if x is not None]
    corr = {}
    # A correlation needs variation on both sides (a subset whose labels are all equal has none: no number).
    if len(pairs) >= 3 and len({x for x, _ in pairs}) > 1 and len({y for _, y in pairs}) > 1:
        xs, ys = zip(*pairs)
        corr = {"spearman": round(float(spearmanr(xs, ys).statistic), 4),
                "pearson": round(float(pearsonr(xs, ys).statistic), 4)}
    base = float(spearmanr(lengths, labels).statistic) if len(set(lengths)) > 1 and len(set(labels)) > 1 else None
    return {"n": len(labels), "n_valid": len(pairs), "spearman": corr.get("spearman"), "pearson": corr.get("pearson"),
            "invalid_rate": _rate([x is None for x in scores]),
            "baseline_length_spearman": None if base is None or math.isnan(base) else round(base, 4)}


def rating_metrics_by_subset(items: Sequence[SingleRating], scores: list[float | None], n_boot: int,
                             seed: int) -> dict[str, dict]:
    groups: dict[str, list[int]] = defaultdict(list)
    for k, r in enumerate(items):
        groups[r.subset].append(k)
    groups["overall"] = list(range(len(items)))
    out = {}
    for name, idx in sorted(groups.items()):
        m = rating_metrics([items[k].rating for k in idx], [scores[k] for k in idx], [len(items[k].output) for k in idx])
        boots = []
        rng = np.random.default_rng(seed)
        for _ in range(n_boot if m["spearman"] is not None else 0):
            pick = rng.integers(0, len(idx), len(idx))
            s = rating_metrics([items[idx[k]].rating for k in pick], [scores[idx[k]] for k in pick], [0] * len(pick))
            if s["spearman"] is not None:
                boots.append(s["spearman"])
        m["spearman_ci"] = [round(float(np.quantile(boots, 0.025)), 4), round(float(np.quantile(boots, 0.975)), 4)] \
            if boots else None
        out[name] = m
    return out


def cost_columns(ctx: JudgeContext, n_items: int, price_in: float, price_out: float) -> dict:
    """Per labelled item: seconds (each call's recorded wall time, cached or not: chat calls, likelihood passes,
    embeddings), chat calls, likelihood passes; USD per 1,000 items (from every call's tokens, cached or not)."""
    s = ctx.stats
    usd = (s.get("prompt_tokens", 0) * price_in + s.get("completion_tokens", 0) * price_out) / 1e6
    n = max(1, n_items)
    return {"seconds_per_item": round(s.get("seconds", 0.0) / n, 3),
            "llm_calls_per_item": round(s.get("llm_calls", 0) / n, 3),
            "likelihood_passes_per_item": round((s.get("likelihood_calls", 0) + s.get("likelihood_cached", 0)) / n, 3),
            "usd_per_1000": round(1000 * usd / n, 4)}
