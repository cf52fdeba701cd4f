"""What a judge is: the two protocols, their results, and the context a judge runs in.

    PairJudge    which of two (instruction, response) records is better? -> PairVerdict (P(first better))
    RatingJudge  how good is one record? -> Rating (a number; higher is better)

Both may `screen` records first: the ids they refuse to rank, with the reason (a relevance guard says "this
response does not answer its instruction"); a screened record never wins a comparison and is never selected.
A judge never returns a default: an answer that cannot be read is a verdict / rating of None with its reason.
A judge may carry `claims_quality = False` (optional attribute, default True): it claims to screen, not to rank
answers by quality, and the gate holds it to its screening rules only (tacos.judges.gate).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

from tacos.judges.orders import FLIP
from tacos.records import Record


# The columns of judgments.jsonl per presentation order, by the read-out that made it.
TEXT_COLUMNS = ("first", "second", "score_first", "score_second", "status", "cached", "cache_key")
LOGPROB_COLUMNS = ("first", "second", "logit", "answer_mass", "problem", "status", "raw", "cached", "cache_key")


@dataclass(frozen=True)
class OrderResult:
    """What one presentation order said (`first` shown as response 1): its read-out (`mode`: text | logprob), the
    numbers it read (text: the two scores; logprob: the log-odds of "1" over "2" and the answer tokens' mass),
    `first_verdict` (win / tie / lose for `first`, decided by the judge that read it; None: no valid answer) and the
    call behind it. Everything outside tacos.judges reads a verdict through `verdict(side)`, never re-derives it."""

    first: str
    second: str
    mode: str
    first_verdict: str | None
    status: str
    raw: str | None = None
    cached: bool = False
    cache_key: str = ""
    score_first: float | None = None  # text
    score_second: float | None = None  # text
    logit: float | None = None  # logprob
    answer_mass: float | None = None  # logprob
    problem: str = ""  # logprob: why the answer could not be read ("" when it could)

    def verdict(self, side: str) -> str | None:
        """This order's verdict seen from `side` (one of its two records): win / tie / lose, or None."""
        if side not in (self.first, self.second):
            raise ValueError(f"{side!r} is neither record of this order ({self.first}, {self.second})")
        return self.first_verdict if side == self.first else FLIP[self.first_verdict]

    @property
    def first_won(self) -> bool | None:
        """True / False when the order is decided, None for a tie or no valid answer (position diagnostics)."""
        return None if self.first_verdict in (None, "tie") else self.first_verdict == "win"

    def as_dict(self) -> dict:
        """The fields its read-out fills (`tacos judge-eval`'s judgments.json)."""
        common = ("first", "second", "status", "raw", "cached", "cache_key")
        own = ("logit", "answer_mass", "problem") if self.mode == "logprob" else ("score_first", "score_second")
        return {k: getattr(self, k) for k in common + own}

    def row(self) -> dict:
        """Its judgments.jsonl row (the score stage): the columns its read-out has."""
        return {k: getattr(self, k) for k in (LOGPROB_COLUMNS if self.mode == "logprob" else TEXT_COLUMNS)}


@dataclass(frozen=True)
class PairVerdict:
    """One pair (a, b). `p_first` = P(a is better than b): 1.0 / 0.0 decisive, 0.5 a tie, in between a soft
    preference; None when the judge gave no valid answer. `comparisons` are the outcomes a ranking fits
    (first id, second id, P(first wins)): one soft outcome per pair, or one hard outcome per presentation order.
    `orders` keeps what each presentation order said (OrderResult: for judgments.jsonl and the position
    diagnostics); `detail` what a judge without presentation orders adds (a guard's reason, two ratings); `points`
    are the absolute numbers each record got (judge scores, win probabilities or ratings): their mean is a record's
    score comparable across clusters."""

    first: str
    second: str
    p_first: float | None
    comparisons: tuple[tuple[str, str, float], ...] = ()
    orders: tuple[OrderResult, ...] = ()
    reason: str = ""
    points: tuple[tuple[str, float], ...] = ()
    detail: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.p_first is not None

    def order_verdicts(self) -> list[str | None]:
        """Each presentation order's verdict from `first`'s side, in the order the orders were asked."""
        return [o.verdict(self.first) for o in self.orders]

    def flipped(self) -> "PairVerdict":
        """The same verdict seen from the other record, its presentation orders listed the other way round
        (comparisons, orders and points name their records; points come in one (first, second) couple per
        order or per soft outcome)."""
        couples = [self.points[k:k + 2] for k in range(0, len(self.points), 2)]
        return PairVerdict(self.second, self.first, None if self.p_first is None else 1.0 - self.p_first,
                           self.comparisons[::-1], self.orders[::-1], self.reason,
                           tuple(p for couple in couples[::-1] for p in couple), self.detail)


@dataclass(frozen=True)
class Rating:
    """One record's rating (higher is better), or None with the reason; `detail` holds the signal's parts."""

    id: str
    value: float | None
    detail: dict = field(default_factory=dict)
    reason: str = ""


@dataclass
class JudgeContext:
    """What a judge may use while it judges: the run's chat LLM session (None when the run has none), the call cache
    (likelihood signals keep their values there too), the seed, whether to draw progress bars."""

    llm: Any = None  # tacos.llm.calling.session.LLMSession
    cache: Any = None  # tacos.llm.calling.cache.CallCache
    seed: int = 0
    progress: bool = True
    stats: dict = field(default_factory=dict)  # counters a judge adds (e.g. likelihood calls), for the manifest

    @property
    def supports_logprobs(self) -> bool:
        return bool(self.llm is not None and self.llm.supports_logprobs)

    def add_seconds(self, seconds: float) -> None:
        """Wall time a judge's work took when it was done (cached calls count the time they took then): what
        `tacos judge-eval` reports per pair or rating."""
        self.stats["seconds"] = self.stats.get("seconds", 0.0) + float(seconds)

    def run_llm(self, requests: Sequence, parser, desc: str) -> list:
        """The run's LLM session answers `requests` (cache first); their recorded wall times are counted."""
        if self.llm is None:
            raise RuntimeError(f"{desc}: this judge calls an LLM, but the run has none")
        results = self.llm.run(requests, parser, desc=desc)
        self.add_seconds(sum(r.latency_s or 0.0 for r in results))
        for name, value in (("llm_calls", len(results)), ("prompt_tokens", sum(r.prompt_tokens for r in results)),
                            ("completion_tokens", sum(r.completion_tokens for r in results))):
            self.stats[name] = self.stats.get(name, 0) + value
        return results


@contextmanager
def judge_context(llm: Any, cache_dir: str, seed: int, progress: bool = True) -> Iterator[JudgeContext]:
    """A JudgeContext on the run's LLM session (and its call cache), or on a cache of its own when the run has no
    chat LLM (signals still keep their values there)."""
    from tacos.llm.calling.cache import CallCache

    own = None if llm is not None else CallCache(cache_dir)
    try:
        yield JudgeContext(llm=llm, cache=llm.cache if llm is not None else own, seed=seed, progress=progress)
    finally:
        if own is not None:
            own.close()


@runtime_checkable
class PairJudge(Protocol):
    name: str
    uses_llm: bool  # makes chat calls through the run's LLM session
    screens: bool  # may refuse records (screen() is not always empty): forecasts of its calls are upper bounds

    def validate(self) -> None: ...
    def identity(self, ctx: JudgeContext) -> dict: ...  # what its verdicts are a function of (gate + stage identity)
    def requests(self, pairs: Sequence[tuple[Record, Record]], ctx: JudgeContext) -> list: ...  # chat calls (forecast)
    def screen(self, records: Sequence[Record], ctx: JudgeContext) -> dict[str, str]: ...
    def judge_pairs(self, pairs: Sequence[tuple[Record, Record]], ctx: JudgeContext) -> list[PairVerdict]: ...
    def diagnostics(self, verdicts: Sequence[PairVerdict]) -> dict: ...  # position-bias numbers ({} if none)


@runtime_checkable
class RatingJudge(Protocol):
    name: str
    uses_llm: bool
    screens: bool

    def validate(self) -> None: ...
    def identity(self, ctx: JudgeContext) -> dict: ...
    def requests(self, records: Sequence[Record], ctx: JudgeContext) -> list: ...
    def screen(self, records: Sequence[Record], ctx: JudgeContext) -> dict[str, str]: ...
    def rate(self, records: Sequence[Record], ctx: JudgeContext) -> list[Rating]: ...


class NoScreen:
    """Mixin: a judge that refuses no record."""

    screens = False

    def screen(self, records: Sequence[Record], ctx: JudgeContext) -> dict[str, str]:
        return {}


def soft_verdict(a: Record, b: Record, p: float, reason: str = "", points: tuple | None = None,
                 **detail: Any) -> PairVerdict:
    """A verdict with one soft outcome (judges without a presentation order: ratings, signals, guards); `detail`
    goes into its judgments.jsonl row."""
    return PairVerdict(a.id, b.id, p, ((a.id, b.id, p),), (), reason,
                       points if points is not None else ((a.id, p), (b.id, 1.0 - p)), detail)
