"""Judge meta-evaluation: how often does an LLM judge agree with labelled preferences? (alpaca_eval's evaluator
leaderboard columns, computed with the project's own prompts, client, cache and parsers.)

Pairwise: every labelled pair (instruction, output_1, output_2, preference 1 | 2 | 1.5 = tie) is judged in both
orders, exactly as the `score` stage judges two records (`source="score"`: the configured scorer's prompt and
judgment mode) or as the `judge` stage judges two answers (`source="judge"`: its pairwise prompt, text scores). The
two orders combine into one preference (text: the reference win/tie/lose rule; logprob: the position-debiased
probability). Agreement with a label is 1 - |prediction - label| on the 1 / 1.5 / 2 scale, so ties count half.
Single: each (instruction, output) gets the single scorer's score; Spearman and Pearson against the labels' ratings.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from tacos.data.preference_pairs import PreferencePair
from tacos.eval.judging import combine, parse_pairwise_scores, verdict
from tacos.llm.types import LLMRequest
from tacos.method.scoring import debias, first_token_logprobs, preference_logit
from tacos.prompts import prompts_hash, read_prompt, render
from tacos.records import Record


@dataclass(frozen=True)
class PairJudgment:
    """One labelled pair after both orders: `pred` 1 / 1.5 / 2, or None when an order gave no usable answer."""

    id: str
    subset: str
    label: float
    pred: float | None
    first_chosen: tuple[bool | None, bool | None]  # per order: the first-presented output won (None: tie/invalid)
    longer: float  # 1 / 2: the longer output, 1.5: equal length
    p_output_1: float | None = None  # logprob judgments: the debiased P(output_1 better)


def _records(pair: PreferencePair) -> tuple[Record, Record]:
    return (Record.make(0, pair.instruction, pair.input, pair.output_1, source=pair.id),
            Record.make(1, pair.instruction, pair.input, pair.output_2, source=pair.id))


def pair_requests(pairs: list[PreferencePair], source: str, mode: str, scorer, judge_spec, seed: int) -> list:
    """Two requests per pair: output_1 first, then output_2 first (a single-answer scorer: each output alone)."""
    out: list[LLMRequest] = []
    for pair in pairs:
        r1, r2 = _records(pair)
        if source == "score" and not scorer.pairwise:
            out += [scorer.request(r1, seed, mode), scorer.request(r2, seed, mode)]
            continue
        if source == "score":
            out += [scorer.request(r1, r2, seed, mode), scorer.request(r2, r1, seed, mode)]
            continue
        question = f"{pair.instruction}\n\n{pair.input}" if pair.input else pair.instruction
        system, phash = read_prompt(judge_spec.system_prompt).strip(), prompts_hash(judge_spec.system_prompt,
                                                                                      judge_spec.prompt)
        for first, second, order in ((pair.output_1, pair.output_2, "12"), (pair.output_2, pair.output_1, "21")):
            user = render(read_prompt(judge_spec.prompt), question=question, answer_1=first, answer_2=second)
            out.append(LLMRequest(messages=(("system", system), ("user", user)), prompt_hash=phash,
                                  temperature=judge_spec.temperature, max_tokens=judge_spec.max_tokens, seed=seed,
                                  label=f"judge-eval/{pair.id}/{order}"))
    return out


def parser_for(source: str, mode: str, scorer):
    if mode == "logprob":
        return lambda raw: raw  # the answer is in the log-probabilities, not in the text
    return scorer.parse if source == "score" else parse_pairwise_scores


def judge_pairs(pairs: list[PreferencePair], results: list, mode: str, single_scorer=None) -> list[PairJudgment]:
    """Combine the two orders of every pair (results: as `pair_requests` ordered them). With a single-answer scorer
    the preference is the higher of the two outputs' scores (no order, so no position effect to measure)."""
    out = []
    for k, pair in enumerate(pairs):
        a, b = results[2 * k], results[2 * k + 1]
        longer = 1.0 if len(pair.output_1) > len(pair.output_2) else 2.0 if len(pair.output_1) < len(pair.output_2) \
            else 1.5
        p1 = None
        if single_scorer is not None:
            s1, s2 = single_scorer.value(a, mode), single_scorer.value(b, mode)
            first = (None, None)
            pred = None if s1 is None or s2 is None else 1.0 if s1 > s2 else 2.0 if s1 < s2 else 1.5
        elif mode == "logprob":
            l12, l21 = (preference_logit(first_token_logprobs(r.logprobs)) if r.status == "ok" else None
                        for r in (a, b))
            first = (None if l12 is None or l12 == 0 else l12 > 0, None if l21 is None or l21 == 0 else l21 > 0)
            if l12 is not None and l21 is not None:
                p1 = debias(l12, l21)[0]
                pred = 1.0 if p1 > 0.5 else 2.0 if p1 < 0.5 else 1.5
            else:
                pred = None
        else:
            v12 = verdict(*a.parsed) if a.status == "ok" else None  # output_1's side, output_1 first
            v21 = verdict(*b.parsed) if b.status == "ok" else None  # output_2's side, output_2 first
            first = (None if v12 in (None, "tie") else v12 == "win", None if v21 in (None, "tie") else v21 == "win")
            flip = {"win": "lose", "lose": "win", "tie": "tie", None: None}
            combined = combine(v12, flip[v21])
            pred = None if combined is None else {"win": 1.0, "tie": 1.5, "lose": 2.0}[combined]
        out.append(PairJudgment(pair.id, pair.subset, pair.preference, pred, first, longer, p1))
    return out


def _mean_ci(values: list[float], n_boot: int, seed: int) -> tuple[float | None, list[float] | None]:
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


def pair_metrics(judgments: list[PairJudgment], n_boot: int = 1000, seed: int = 0) -> dict:
    """The leaderboard columns over `judgments` (one subset or all)."""
    valid = [j for j in judgments if j.pred is not None]
    agreement, ci = _mean_ci([_agreement(j.pred, j.label) for j in valid], n_boot, seed)
    both = [j for j in valid if None not in j.first_chosen]
    decisive_orders = [f for j in judgments for f in j.first_chosen if f is not None]
    unequal = [j for j in valid if j.pred != 1.5 and j.longer != 1.5]
    return {
        "n": len(judgments), "n_valid": len(valid), "agreement": agreement, "agreement_ci": ci,
        # the two orders name the same output: first chosen in one order, second in the other
        "consistency": _rate([j.first_chosen[0] != j.first_chosen[1] for j in both]),
        "first_position_rate": _rate(decisive_orders),
        "prefers_longer_rate": _rate([j.pred == j.longer for j in unequal]),
        "tie_rate": _rate([j.pred == 1.5 for j in valid]),
        "invalid_rate": _rate([j.pred is None for j in judgments]),
        "baseline_longer": _mean_ci([_agreement(j.longer, j.label) for j in judgments], 1, seed)[0],
        "baseline_first": _mean_ci([_agreement(1.0, j.label) for j in judgments], 1, seed)[0],
    }


def single_metrics(labels: list[float], scores: list[float | None], lengths: list[int]) -> dict:
    """Spearman and Pearson of the judge's scores against the labels' ratings (invalid scores left out)."""
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


def cost_columns(results: list, price_in: float, price_out: float) -> dict:
    """calls, seconds and USD per 1,000 calls, from each call's recorded wall time and tokens (cached or not)."""
    timed = [r.latency_s for r in results if r.latency_s is not None]
    usd = sum((r.prompt_tokens * price_in + r.completion_tokens * price_out) / 1e6 for r in results)
    return {"calls": len(results), "seconds_per_1000": round(1000 * sum(timed) / len(timed), 1) if timed else None,
            "usd_per_1000": round(1000 * usd / max(1, len(results)), 4)}


def by_subset(judgments: list, metric, **kw) -> dict[str, dict]:
    """metric(...) per subset and for `overall`."""
    groups: dict[str, list] = defaultdict(list)
    for j in judgments:
        groups[j.subset].append(j)
    out = {s: metric(js, **kw) for s, js in sorted(groups.items())}
    out["overall"] = metric(judgments, **kw)
    return out
