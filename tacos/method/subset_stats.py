"""What a selected subset prefers, next to its pool: response length, markdown formatting, and how the ranking score
follows length. Length and formatting alone beat several judges on the labelled suites (issue 20), so every run says
how much of both its subset carries: a selector that merely picks long, formatted answers shows it here.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

# One pattern per markdown device; a response "has markdown" when any one occurs.
_MARKDOWN = {
    "heading": re.compile(r"^\s{0,3}#{1,6}\s+\S", re.MULTILINE),
    "bullet": re.compile(r"^\s*[-*+•]\s+\S", re.MULTILINE),
    "numbered": re.compile(r"^\s*\d{1,3}[.)]\s+\S", re.MULTILINE),
    "bold": re.compile(r"\*\*(?=\S).+?(?<=\S)\*\*"),  # not __x__: that is mostly Python names
    "code_fence": re.compile(r"^\s*(```|~~~)", re.MULTILINE),
}


def markdown_kinds(text: str) -> list[str]:
    """The markdown devices a text uses (headings, bullets, numbered lists, bold, code fences)."""
    return [kind for kind, pattern in _MARKDOWN.items() if pattern.search(text or "")]


def has_markdown(text: str) -> bool:
    return bool(markdown_kinds(text))


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rho (average ranks for ties); None when it is undefined (fewer than 3 points or a constant side)."""
    if len(xs) != len(ys) or len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr(xs, ys).statistic)
    return None if math.isnan(rho) else round(rho, 4)


def _mean(xs: Iterable[float]) -> float | None:
    xs = list(xs)
    return round(sum(xs) / len(xs), 4) if xs else None


def record_scores(scores: list[dict]) -> dict[str, float]:
    """One score per scored record: its absolute score (raw_score, comparable across clusters) where the scorer gives
    one, else its ranking score, averaged over the clusters it was scored in."""
    per_id: dict[str, list[float]] = defaultdict(list)
    for row in scores:
        value = row.get("raw_score") if row.get("raw_score") is not None else row.get("score")
        if value is not None and math.isfinite(float(value)):
            per_id[row["id"]].append(float(value))
    return {i: sum(v) / len(v) for i, v in per_id.items()}


def within_cluster_spearman(scores: list[dict], lengths: dict[str, int]) -> float | None:
    """Size-weighted mean over clusters (>= 3 scored members) of rho(ranking score, response length): what the
    in-cluster order prefers, the order a cluster quota picks from."""
    by_cluster: dict = defaultdict(list)
    for row in scores:
        if row.get("score") is not None and row["id"] in lengths:
            by_cluster[row.get("cluster")].append((float(row["score"]), lengths[row["id"]]))
    weighted = [(len(rows), spearman([s for s, _ in rows], [n for _, n in rows])) for rows in by_cluster.values()]
    weighted = [(n, rho) for n, rho in weighted if rho is not None]
    total = sum(n for n, _ in weighted)
    return round(sum(n * rho for n, rho in weighted) / total, 4) if total else None


def subset_preferences(pool: dict[str, str], selected: Sequence[str], scores: list[dict] | None = None) -> dict:
    """pool: record id -> response text; selected: the chosen ids; scores: the score stage's rows (id, cluster, score,
    raw_score), when the selector used them. Lengths are in characters."""
    lengths = {i: len(text or "") for i, text in pool.items()}
    marked = {i: has_markdown(text) for i, text in pool.items()}
    chosen = [i for i in selected if i in pool]
    out = {
        "mean_response_chars_selected": _mean(lengths[i] for i in chosen),
        "mean_response_chars_pool": _mean(lengths.values()),
        "markdown_share_selected": _mean(float(marked[i]) for i in chosen),
        "markdown_share_pool": _mean(float(v) for v in marked.values()),
        "score_length_spearman": None, "score_length_spearman_within_cluster": None, "scored_records": 0,
    }
    if scores:
        per_record = {i: s for i, s in record_scores(scores).items() if i in lengths}
        ids = sorted(per_record)
        out["scored_records"] = len(ids)
        out["score_length_spearman"] = spearman([per_record[i] for i in ids], [lengths[i] for i in ids])
        out["score_length_spearman_within_cluster"] = within_cluster_spearman(scores, lengths)
    out["described"] = describe(out)
    return out


def describe(prefers: dict) -> str:
    """One line for a person: the subset against its pool."""
    def num(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    p = prefers
    return (f"mean response {num(p.get('mean_response_chars_selected'), '.0f')} vs "
            f"{num(p.get('mean_response_chars_pool'), '.0f')} chars, markdown "
            f"{num(p.get('markdown_share_selected'), '.2f')} vs {num(p.get('markdown_share_pool'), '.2f')}, "
            f"score–length rho {num(p.get('score_length_spearman'), '+.2f')} (within clusters "
            f"{num(p.get('score_length_spearman_within_cluster'), '+.2f')})")
