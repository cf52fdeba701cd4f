"""Bad rows planted on purpose: what a selection must leave out, for the suites and the planted-pool benchmark.

Three kinds, each a known failure of real instruction data:
    off_topic    the response of another row (it answers a different instruction)
    cut          the response cut mid-sentence at ~15 % of its words
    non_answer   a response that answers nothing ("I don't know.")
Deterministic for a given random.Random.
"""
from __future__ import annotations

import random
import re
from typing import Sequence

KINDS = ("off_topic", "cut", "non_answer")
NON_ANSWERS = ("I don't know.", "I'm not sure.", "Sorry, I can't help with that.", "N/A",
               "I don't have enough information to answer that.", "I have no idea.", "No comment.",
               "I cannot answer this question.")
_SENTENCE_END = re.compile(r"[.!?:;)\]\"']$")


def cut_mid_sentence(text: str, fraction: float = 0.15, min_words: int = 3) -> str:
    """The first ~`fraction` of the words, ending on a word that does not close a sentence (so the cut shows)."""
    words = text.split()
    n = max(min_words, round(len(words) * fraction))
    n = min(n, max(1, len(words) - 1))  # always drop something
    while n > 1 and _SENTENCE_END.search(words[n - 1]):
        n -= 1
    return " ".join(words[:n])


def plant(kind: str, output: str, rng: random.Random, other_outputs: Sequence[str]) -> str:
    """A bad version of a row whose response is `output`; `other_outputs` are responses to other instructions."""
    if kind == "off_topic":
        return rng.choice([o for o in other_outputs if o.strip() and o != output])
    if kind == "cut":
        return cut_mid_sentence(output)
    if kind == "non_answer":
        return rng.choice(NON_ANSWERS)
    raise ValueError(f"unknown kind {kind!r}; kinds: {KINDS}")


def planted_pool(rows: Sequence[dict], bad: dict[str, int], rng: random.Random,
                 other_outputs: Sequence[str]) -> tuple[list[dict], dict[int, str]]:
    """A copy of Alpaca-format `rows` with `bad[kind]` rows of each kind made bad (rows drawn by `rng`; off-topic
    responses drawn from `other_outputs`, answers to instructions outside the pool): (rows, row index -> kind)."""
    if sum(bad.values()) > len(rows):
        raise ValueError(f"cannot plant {sum(bad.values())} bad rows in a pool of {len(rows)}")
    picks = rng.sample(range(len(rows)), sum(bad.values()))
    out, kinds = [dict(r) for r in rows], {}
    k = 0
    for kind in KINDS:
        for _ in range(bad.get(kind, 0)):
            i = picks[k]
            k += 1
            out[i]["output"] = plant(kind, rows[i]["output"], rng, other_outputs)
            kinds[i] = kind
    return out, kinds


def hypergeometric_p(pool: int, bad: int, selected: int, bad_selected: int) -> float:
    """P(a random subset of `selected` rows holds at most `bad_selected` of the `bad` ones): how surprising it is
    that a selection left out this many."""
    from scipy.stats import hypergeom

    return float(hypergeom(pool, bad, selected).cdf(bad_selected))
