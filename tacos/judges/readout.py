"""Reading a one-token answer from log-probabilities: only the answer tokens count, and a missing one is invalid.

The judge is asked for one token ("1" or "2", or a digit of a scale). The answer is forced where the endpoint
allows it (a JSON schema whose only values are the answer digits: llama.cpp and vLLM turn it into a grammar; an
assistant prefill ends the prompt right before the answer), and the probabilities are read from the first
generated position's top log-probabilities, which servers report before the constraint: so `answer_mass`, the
probability the judge put on the answer tokens of its own accord, says whether it understood the question at all.
A token absent from the reported top-k has an unknown probability: the read-out is invalid (counted and excluded),
never filled in with a floor value that would manufacture a confident verdict out of nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def first_token_logprobs(logprobs: list | None) -> dict[str, float]:
    """token -> logprob at the first generated position (the chosen token and the top list). Forms that differ only
    by surrounding spaces (" 1", "1") are one answer: their probabilities add up."""
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


@dataclass(frozen=True)
class Readout:
    """The answer distribution over `tokens` at the first position, or the reason it cannot be read."""

    probs: dict[str, float] | None  # renormalised over the answer tokens
    mass: float | None  # P(any answer token) before renormalising
    reason: str = ""

    @property
    def valid(self) -> bool:
        return self.probs is not None


def read_answer(logprobs: list | None, tokens: tuple[str, ...] | list[str], require_all: bool = True) -> Readout:
    """The answer distribution over `tokens`. `require_all`: every token must be listed (a preference between two
    answers needs both probabilities); else at least one must be (an expected score over a scale's digits)."""
    top = first_token_logprobs(logprobs)
    if not top:
        return Readout(None, None, "no log-probabilities in the answer")
    found = {t: math.exp(top[t]) for t in tokens if t in top}
    mass = sum(found.values())
    missing = [t for t in tokens if t not in found]
    if (require_all and missing) or not found:
        return Readout(None, round(mass, 6), f"answer token(s) {missing} not among the {len(top)} reported "
                                             f"log-probabilities (answer mass {mass:.3f})")
    return Readout({t: p / mass for t, p in found.items()}, round(mass, 6))


def preference_logit(r: Readout, first: str = "1", second: str = "2") -> float | None:
    """log P(first) - log P(second) over the answer tokens, or None when the read-out is invalid."""
    if not r.valid:
        return None
    return math.log(r.probs[first]) - math.log(r.probs[second])


def expected_value(r: Readout, values: dict[str, float]) -> float | None:
    """The expected score over the scale's tokens (renormalised), or None when the read-out is invalid."""
    if not r.valid:
        return None
    return sum(values[t] * p for t, p in r.probs.items())
