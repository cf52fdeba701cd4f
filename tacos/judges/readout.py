"""How an LLM judge's answer is read: the read-out objects (a judge's `readout:`), and the one-token reading they
rely on.

    TextReadout     the judge writes its answer (JSON scores, "8 7" on a first line), read by its `text_parser`
    LogprobReadout  a one-token answer ("1" / "2", or a digit of a scale), read from the log-probabilities
    AutoReadout     LogprobReadout where the endpoint returns log-probabilities, else TextReadout (`resolve(ctx)`)

A judge asks its read-out, never a mode string, how to build a request (`request`), how to parse the answer
(`parser`), how to turn a pair's two orders into a PairVerdict (`pair_verdict`) and a call into a Rating (`rating`);
the read-out's `identity()` is part of the judge's (so of its gate key).

Reading a one-token answer from log-probabilities: only the answer tokens count, and a missing one is invalid.

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
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tacos.judges.base import OrderResult, PairVerdict, Rating
from tacos.judges.orders import P_OF, combine, debias, verdict
from tacos.llm.calling.types import LLMRequest
from tacos.prompts import prompts_hash, read_prompt


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
class AnswerDistribution:
    """The answer distribution over `tokens` at the first position, or the reason it cannot be read."""

    probs: dict[str, float] | None  # renormalised over the answer tokens
    mass: float | None  # P(any answer token) before renormalising
    reason: str = ""

    @property
    def valid(self) -> bool:
        return self.probs is not None


def read_answer(logprobs: list | None, tokens: tuple[str, ...] | list[str],
                require_all: bool = True) -> AnswerDistribution:
    """The answer distribution over `tokens`. `require_all`: every token must be listed (a preference between two
    answers needs both probabilities); else at least one must be (an expected score over a scale's digits)."""
    top = first_token_logprobs(logprobs)
    if not top:
        return AnswerDistribution(None, None, "no log-probabilities in the answer")
    found = {t: math.exp(top[t]) for t in tokens if t in top}
    mass = sum(found.values())
    missing = [t for t in tokens if t not in found]
    if (require_all and missing) or not found:
        return AnswerDistribution(None, round(mass, 6), f"answer token(s) {missing} not among the {len(top)} reported "
                                             f"log-probabilities (answer mass {mass:.3f})")
    return AnswerDistribution({t: p / mass for t, p in found.items()}, round(mass, 6))


def preference_logit(r: AnswerDistribution, first: str = "1", second: str = "2") -> float | None:
    """log P(first) - log P(second) over the answer tokens, or None when the read-out is invalid."""
    if not r.valid:
        return None
    return math.log(r.probs[first]) - math.log(r.probs[second])


def expected_value(r: AnswerDistribution, values: dict[str, float]) -> float | None:
    """The expected score over the scale's tokens (renormalised), or None when the read-out is invalid."""
    if not r.valid:
        return None
    return sum(values[t] * p for t, p in r.probs.items())


# -- read-out objects ----------------------------------------------------------------------------------------------
@runtime_checkable
class Readout(Protocol):
    """What a judge's `readout:` is (conf/readout/*.yaml): checked before work, resolved for the run's endpoint."""

    def validate(self, judge: Any) -> None: ...
    def resolve(self, ctx: Any) -> "ResolvedReadout": ...


@runtime_checkable
class ResolvedReadout(Protocol):
    """A read-out that judges (TextReadout, LogprobReadout): everything an LLM judge asks it."""

    mode: str  # text | logprob: the judge identity's "mode"
    describe: str

    def identity(self) -> dict: ...
    def prompt(self, judge: Any) -> str: ...
    def parser(self, judge: Any): ...
    def request(self, judge: Any, user: str, seed: int, label: str, tag: str = "") -> LLMRequest: ...
    def pair_verdict(self, judge: Any, a: str, b: str, ab, ba) -> PairVerdict: ...
    def rating(self, record_id: str, res, values: dict[str, float]) -> Rating: ...


# What they need from a judge: `system_prompt`, `prompt` (text), `token_prompt` (one-token answers), `text_parser`,
# `temperature`, `max_tokens`, `tie_margin` (pairs) and `prompt_hash(readout)`.

def _invalid_rating(record_id: str, res) -> Rating:
    return Rating(record_id, None, {"status": res.status}, res.error or res.status)


@dataclass
class TextReadout:
    """The judge writes its answer as text, read by its `text_parser`. A pair: each order gives two scores and a
    verdict (the higher wins, `tie_margin` widens ties), the two orders combine by the reference rule
    (tacos.judges.orders); a rating: the parsed score."""

    mode = "text"
    describe = ""  # what progress bars add

    def resolve(self, ctx: Any) -> "TextReadout":
        return self

    def identity(self) -> dict:
        return {"mode": self.mode}

    def validate(self, judge: Any) -> None:
        pass

    def prompt(self, judge: Any) -> str:
        return judge.prompt

    def parser(self, judge: Any):
        return judge.text_parser.parse

    def request(self, judge: Any, user: str, seed: int, label: str, tag: str = "") -> LLMRequest:
        """`label` names the call in logs, after the judge's `label_prefix` (`tag` marks one-token calls)."""
        system = ("system", _system(judge))
        return LLMRequest(messages=(system, ("user", user)), prompt_hash=judge.prompt_hash(self),
                          temperature=judge.temperature, max_tokens=judge.max_tokens,
                          schema=judge.text_parser.schema(), seed=seed, label=_label(judge, "", label))

    def pair_verdict(self, judge: Any, a: str, b: str, ab, ba) -> PairVerdict:
        orders, comparisons = [], []
        for first, second, res in ((a, b, ab), (b, a, ba)):
            s1, s2 = res.parsed if res.status == "ok" else (None, None)
            side = None if s1 is None else verdict(s1, s2, judge.tie_margin)
            orders.append(OrderResult(first, second, self.mode, side, res.status, res.raw, res.cached, res.key,
                                      score_first=s1, score_second=s2))
            if side is not None:
                comparisons.append((first, second, P_OF[side]))
        combined = combine(*(o.verdict(a) for o in orders))  # both orders read from a's side
        points = tuple(p for o in orders if o.score_first is not None
                       for p in ((o.first, o.score_first), (o.second, o.score_second)))
        return PairVerdict(a, b, None if combined is None else P_OF[combined], tuple(comparisons), tuple(orders),
                           "" if combined is not None else "an order has no valid answer", points)

    def rating(self, record_id: str, res, values: dict[str, float]) -> Rating:
        if res.status != "ok":
            return _invalid_rating(record_id, res)
        return Rating(record_id, float(res.parsed), {"status": "ok"})


@dataclass
class LogprobReadout:
    """A one-token answer, forced where the endpoint takes a grammar (`force_answer`) and optionally prefilled
    (`prefill`: the assistant turn starts with it), read from the first position's `top_logprobs`. A pair: P(first
    better) over "1" / "2" in both orders, the position pull cancelled exactly (tacos.judges.orders.debias); a
    rating: the expected value over the scale's digits. A missing answer token is invalid, never a floor value."""

    top_logprobs: int = 10
    force_answer: bool = True
    prefill: str = ""

    mode = "logprob"
    describe = ", log-probabilities"

    def resolve(self, ctx: Any) -> "LogprobReadout":
        return self

    def identity(self) -> dict:
        return {"mode": self.mode, "force_answer": self.force_answer, "prefill": self.prefill}

    def validate(self, judge: Any) -> None:
        prompts_hash(judge.system_prompt, judge.token_prompt)  # a missing prompt file fails here, before any work
        if self.top_logprobs < 2:
            raise ValueError(f"readout.top_logprobs must be >= 2, got {self.top_logprobs}")
        long = [t for t in judge.answer_values() if len(t) != 1]
        if long:
            raise ValueError(f"{type(self).__name__} reads one token per answer: {judge.name}'s answers must each be "
                             f"one character (a scale within 0-9), got {long}")

    def prompt(self, judge: Any) -> str:
        return judge.token_prompt

    def parser(self, judge: Any):
        return lambda raw: raw

    def request(self, judge: Any, user: str, seed: int, label: str, tag: str = "") -> LLMRequest:
        messages = (("system", _system(judge)), ("user", user))
        if self.prefill:
            messages += (("assistant", self.prefill),)
        return LLMRequest(messages=messages, prompt_hash=judge.prompt_hash(self), temperature=0.0, max_tokens=1,
                          seed=seed, logprobs=self.top_logprobs, label=_label(judge, tag, label),
                          choices=tuple(judge.answer_values()) if self.force_answer else ())

    def pair_verdict(self, judge: Any, a: str, b: str, ab, ba) -> PairVerdict:
        orders, logits = [], []
        answers = tuple(judge.answer_values())
        for first, second, res in ((a, b, ab), (b, a, ba)):
            r = read_answer(res.logprobs, answers) if res.status == "ok" else None
            logit = preference_logit(r, *answers) if r is not None else None
            logits.append(logit)
            shown = None if logit is None else round(logit, 6)
            orders.append(OrderResult(first, second, self.mode, None if shown is None else verdict(shown, 0.0),
                                      res.status, res.raw, res.cached, res.key, logit=shown,
                                      answer_mass=None if r is None else r.mass,
                                      problem=(res.error or res.status) if r is None else r.reason))
        if None in logits:
            return PairVerdict(a, b, None, (), tuple(orders), "; ".join(o.problem for o in orders if o.problem))
        p, _ = debias(*logits)
        return PairVerdict(a, b, p, ((a, b, p),), tuple(orders), points=((a, p), (b, 1.0 - p)))

    def rating(self, record_id: str, res, values: dict[str, float]) -> Rating:
        if res.status != "ok":
            return _invalid_rating(record_id, res)
        read = read_answer(res.logprobs, tuple(values), require_all=False)
        return Rating(record_id, expected_value(read, values), {"status": "ok", "answer_mass": read.mass},
                      read.reason)


@dataclass
class AutoReadout:
    """LogprobReadout (with these settings) where the run's endpoint returns log-probabilities, else TextReadout."""

    top_logprobs: int = 10
    force_answer: bool = True
    prefill: str = ""

    def resolve(self, ctx: Any) -> "TextReadout | LogprobReadout":
        if ctx is not None and ctx.supports_logprobs:
            return LogprobReadout(self.top_logprobs, self.force_answer, self.prefill)
        return TextReadout()

    def validate(self, judge: Any) -> None:
        LogprobReadout(self.top_logprobs, self.force_answer, self.prefill).validate(judge)  # it may read tokens


READOUTS = (TextReadout, LogprobReadout, AutoReadout)


def _system(judge: Any) -> str:
    return read_prompt(judge.system_prompt).strip()


def _label(judge: Any, tag: str, label: str) -> str:
    return f"{getattr(judge, 'label_prefix', '')}{tag}{label}"
