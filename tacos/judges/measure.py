"""How well does a judge agree with labels? The numbers `tacos judge-eval` reports (alpaca_eval's evaluator
leaderboard columns), for ANY judge object: pair judges on preference pairs, rating judges on pairs (the higher
rating wins) or on labelled ratings (rank correlation; AUC when the labels are binary).

Agreement with a pair's label is 1 - |prediction - label| on the 1 / 1.5 / 2 scale (ties count half), with a Wilson
95 % interval, over the valid verdicts (`agreement`) and over all items with no verdict counted as a tie
(`agreement_all`: what the gate reads, so abstaining on hard pairs does not help). Beside it the ladder of trivial
rungs (tacos.judges.ladder) on the same items, the best of them and the one-sided paired test of the judge against
it; `baseline_longer` / `baseline_first` stay for old tables. The judge's own diagnostics (order consistency,
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
from tacos.judges.ladder import agreement as item_agreement
from tacos.judges.statistics import auc, auc_ci, delong_paired_p, sign_flip_p, wilson
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


def _agreement(pred: float, label: float) -> float:
    return 1.0 - abs(pred - label)


def _rate(xs: list[bool]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def pair_metrics(judgments: list[PairJudgment], verdicts: list[PairVerdict], judge, n_boot: int = 1000,
                 seed: int = 0, rungs: dict[str, list[float]] | None = None) -> dict:
    """The leaderboard columns over `judgments` (one subset or all), the judge's own diagnostics and, given the
    rungs' predictions on the same items, the ladder columns."""
    valid = [j for j in judgments if j.pred is not None]
    on_valid = [_agreement(j.pred, j.label) for j in valid]
    on_all = [item_agreement(j.pred, j.label) for j in judgments]
    unequal = [j for j in valid if j.pred != 1.5 and j.longer != 1.5]
    out = {
        "n": len(judgments), "n_valid": len(valid),
        "agreement": _mean(on_valid), "agreement_ci": wilson(sum(on_valid), len(on_valid)),
        "agreement_all": _mean(on_all), "agreement_all_ci": wilson(sum(on_all), len(on_all)),
        "prefers_longer_rate": _rate([j.pred == j.longer for j in unequal]),
        "tie_rate": _rate([j.pred == 1.5 for j in valid]),
        "invalid_rate": _rate([j.pred is None for j in judgments]),
        "baseline_longer": _mean([_agreement(j.longer, j.label) for j in judgments]),
        "baseline_first": _mean([_agreement(1.0, j.label) for j in judgments]),
        **as_pair_judge(judge).diagnostics(verdicts),
    }
    if rungs:
        out.update(pair_ladder(on_all, {name: [item_agreement(p, j.label) for p, j in zip(preds, judgments)]
                                        for name, preds in rungs.items()}))
    return out


def _mean(xs: list[float]) -> float | None:
    return round(float(np.mean(xs)), 4) if xs else None


PAIRED_SIGN_TEST = "exact one-sided paired sign-flip test of per-item agreement (McNemar's, ties as half points)"


def pair_ladder(judge_items: list[float], rung_items: dict[str, list[float]]) -> dict:
    """Every rung's agreement [Wilson CI] over all items, the best rung (the first listed on a tie) and the
    one-sided p of "the judge agrees more often than the best rung" on the same items."""
    # keyed like the judge's column (a rung always answers: its agreement over all items is its agreement)
    ladder = {name: {"agreement_all": _mean(xs), "agreement_all_ci": wilson(sum(xs), len(xs))}
              for name, xs in rung_items.items()}
    best = max(ladder, key=lambda k: ladder[k]["agreement_all"] if ladder[k]["agreement_all"] is not None else -1)
    diffs = [a - b for a, b in zip(judge_items, rung_items[best])]
    return {"ladder_metric": "agreement_all", "ladder": ladder, "best_rung": best,
            "best_rung_value": ladder[best]["agreement_all"], "best_rung_ci": ladder[best]["agreement_all_ci"],
            "p_vs_best_rung": round(sign_flip_p(diffs), 6) if diffs else None, "paired_test": PAIRED_SIGN_TEST}


def pair_metrics_by_subset(judgments: list[PairJudgment], verdicts: list[PairVerdict], judge, n_boot: int,
                           seed: int, rungs: dict[str, list[float]] | None = None) -> dict[str, dict]:
    groups: dict[str, list[int]] = defaultdict(list)
    for k, j in enumerate(judgments):
        groups[j.subset].append(k)
    groups_all = {**dict(sorted(groups.items())), "overall": list(range(len(judgments)))}
    return {s: pair_metrics([judgments[k] for k in idx], [verdicts[k] for k in idx], judge, n_boot, seed,
                            {n: [p[k] for k in idx] for n, p in (rungs or {}).items()})
            for s, idx in groups_all.items()}


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


def _spearman(x: Sequence, y: Sequence) -> float | None:
    from scipy.stats import spearmanr

    pairs = [(a, b) for a, b in zip(x, y) if a is not None]
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return None
    rho = float(spearmanr(*zip(*pairs)).statistic)
    return None if math.isnan(rho) else rho


def _percentiles(xs: list[float]) -> list[float] | None:
    return [round(float(np.quantile(xs, 0.025)), 4), round(float(np.quantile(xs, 0.975)), 4)] if xs else None


def _boot_spearman(x: Sequence, y: Sequence, picks: np.ndarray) -> list[float]:
    out = []
    for pick in picks:
        rho = _spearman([x[k] for k in pick], [y[k] for k in pick])
        if rho is not None:
            out.append(rho)
    return out


PAIRED_DELONG = "one-sided DeLong test of AUC(judge) > AUC(best rung) on the same items (missing ratings tie)"
PAIRED_BOOT = "one-sided paired bootstrap of Spearman(judge) - Spearman(best rung) (missing ratings at the median)"


def rating_ladder(labels: list[float], scores: list, rungs: dict[str, list], binary: bool,
                  picks: np.ndarray) -> dict:
    """Every rung's Spearman [bootstrap CI] (and AUC [DeLong CI] for binary labels), the best rung by AUC (binary)
    or Spearman, and the one-sided paired test of the judge against it."""
    metric = "auc" if binary else "spearman"
    ladder = {}
    for name, xs in rungs.items():
        rho = _spearman(xs, labels)
        entry = {"spearman": None if rho is None else round(rho, 4),
                 "spearman_ci": _percentiles(_boot_spearman(xs, labels, picks)) if rho is not None else None}
        if binary:
            entry.update({"auc": auc(xs, labels), "auc_ci": auc_ci(xs, labels)})
        ladder[name] = entry
    ranked = [k for k in ladder if ladder[k][metric] is not None]
    if not ranked:
        return {"ladder_metric": metric, "ladder": ladder, "best_rung": None}
    best = max(ranked, key=lambda k: ladder[k][metric])
    if binary:
        p, test = delong_paired_p(scores, rungs[best], labels), PAIRED_DELONG
    else:
        valid = [s for s in scores if s is not None]
        filled = [float(np.median(valid)) if s is None else s for s in scores] if valid else None
        diffs = []
        for pick in picks if filled else []:
            a = _spearman([filled[k] for k in pick], [labels[k] for k in pick])
            b = _spearman([rungs[best][k] for k in pick], [labels[k] for k in pick])
            if a is not None and b is not None:
                diffs.append(a - b)
        p, test = (float(np.mean([d <= 0 for d in diffs])) if diffs else None), PAIRED_BOOT
    return {"ladder_metric": metric, "ladder": ladder, "best_rung": best, "best_rung_value": ladder[best][metric],
            "best_rung_ci": ladder[best][f"{metric}_ci"], "p_vs_best_rung": None if p is None else round(p, 6),
            "paired_test": test}


def rating_metrics_by_subset(items: Sequence[SingleRating], scores: list[float | None], n_boot: int,
                             seed: int, rungs: dict[str, list] | None = None) -> dict[str, dict]:
    """Per subset and overall: Spearman / Pearson [bootstrap CI], AUC [DeLong CI] when the suite's labels take two
    values (binary: the higher one is positive), and the ladder when the rungs' scores are given."""
    binary = len({r.rating for r in items}) == 2
    groups: dict[str, list[int]] = defaultdict(list)
    for k, r in enumerate(items):
        groups[r.subset].append(k)
    groups["overall"] = list(range(len(items)))
    out = {}
    for name, idx in sorted(groups.items()):
        labels, sub = [items[k].rating for k in idx], [scores[k] for k in idx]
        m = rating_metrics(labels, sub, [len(items[k].output) for k in idx])
        picks = np.random.default_rng(seed).integers(0, len(idx), size=(n_boot, len(idx)))
        m["spearman_ci"] = _percentiles(_boot_spearman(sub, labels, picks)) if m["spearman"] is not None else None
        two_classes = binary and len(set(labels)) == 2
        if binary:
            m["auc"] = auc(sub, labels) if two_classes else None
            m["auc_ci"] = auc_ci(sub, labels) if two_classes else None
        if rungs:
            m.update(rating_ladder(labels, sub, {n: [xs[k] for k in idx] for n, xs in rungs.items()}, two_classes,
                                   picks))
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
