"""Judges built from judges: a guard that screens records out, ratings compared as pairs, weighted sums.

    Guard([Check(EmbeddingRelevance(), min=0.2, says="..."), ...])   a record failing any check cannot be ranked
    GuardedPairJudge(guard, judge)     a screened record loses to any unscreened one (no LLM call); both screened:
                                       a tie; neither: `judge` decides
    GuardedRatingJudge(guard, judge)   a screened record gets no rating (excluded, with the reason)
    RatingPairJudge(judge, scale)      P(a better) = sigmoid((rating_a - rating_b) / scale): no position, no bias
    WeightedRating(parts)              sum of weight x rating (a part without a rating makes the sum None)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from tacos.judges.base import JudgeContext, NoScreen, PairJudge, PairVerdict, Rating, soft_verdict
from tacos.records import Record


def as_pair_judge(judge: Any) -> Any:
    """A pair judge as it is; a rating judge compared pair by pair (higher rating wins, RatingPairJudge)."""
    return judge if isinstance(judge, PairJudge) else RatingPairJudge(judge, name=getattr(judge, "name", "ratings"))


def as_rating_judge(judge: Any) -> "GuardedRatingJudge | None":
    """The rating judge behind a pair judge that only compares ratings (a RatingPairJudge, or a guard in front of
    one), with every screen in front of it: its records can be ordered by their ratings exactly, with no pairing.
    None for a judge that really compares two records (an LLM shown both)."""
    if isinstance(judge, RatingPairJudge):
        return GuardedRatingJudge(Guard(), judge.judge, name=judge.judge.name)
    if isinstance(judge, GuardedPairJudge):
        inner = as_rating_judge(judge.judge)
        if inner is not None:
            return GuardedRatingJudge(Guard(judge.guard.checks + inner.guard.checks), inner.judge, name=judge.name)
    return None


@dataclass
class Check:
    judge: Any  # a RatingJudge
    min: float  # the record fails when its rating is below this (no rating: not failed, the reason is kept)
    says: str = "fails a check"  # what a failure means, for excluded.jsonl

    def identity(self, ctx: JudgeContext) -> dict:
        return {"judge": self.judge.identity(ctx), "min": self.min}


@dataclass
class Guard:
    checks: list = field(default_factory=list)

    def validate(self) -> None:
        for c in self.checks:
            c.judge.validate()

    def identity(self, ctx: JudgeContext) -> list:
        return [c.identity(ctx) for c in self.checks]

    def screen(self, records: Sequence[Record], ctx: JudgeContext) -> dict[str, str]:
        """id -> why the record cannot be ranked (every failed check, with its value and bar)."""
        unique = list({r.id: r for r in records}.values())
        failed: dict[str, list[str]] = {}
        for c in self.checks:
            for rating in c.judge.rate(unique, ctx):
                if rating.value is not None and rating.value < c.min:
                    failed.setdefault(rating.id, []).append(
                        f"{c.says} ({c.judge.name} {rating.value:.3f} < {c.min})")
        return {i: "; ".join(reasons) for i, reasons in failed.items()}


def screened_verdict(a: Record, b: Record, screened: dict[str, str]) -> PairVerdict:
    """The verdict on a pair with a screened member: it loses to an unscreened one; two screened ones tie."""
    sa, sb = a.id in screened, b.id in screened
    who = " and ".join(f"{x.id}: {screened[x.id]}" for x in (a, b) if x.id in screened)
    return soft_verdict(a, b, 0.5 if sa and sb else 0.0 if sa else 1.0, f"screened: {who}", guard=who)


@dataclass
class _Guarded:
    """A guard in front of a judge: what both guarded kinds share."""

    guard: Guard
    judge: Any  # the judge that ranks (pairs) or rates (records) what the guard lets through
    name: str = "guarded"
    # false: the judge only screens (keeps out off-topic / cut / defective answers) and does not claim to rank
    # on-topic answers by quality: the gate applies its screening rules only and every verdict says so
    claims_quality: bool = True

    @property
    def uses_llm(self) -> bool:
        return self.judge.uses_llm

    @property
    def screens(self) -> bool:
        return bool(self.guard.checks) or self.judge.screens

    def validate(self) -> None:
        self.guard.validate()
        self.judge.validate()

    def identity(self, ctx: JudgeContext) -> dict:
        return {"judge": type(self).__name__, "guard": self.guard.identity(ctx), "ranker": self.judge.identity(ctx)}

    def screen(self, records: Sequence[Record], ctx: JudgeContext) -> dict[str, str]:
        return {**self.judge.screen(records, ctx), **self.guard.screen(records, ctx)}


@dataclass
class GuardedPairJudge(_Guarded):
    def requests(self, pairs: Sequence[tuple[Record, Record]], ctx: JudgeContext) -> list:
        """The ranker's calls if the guard screened nothing out (a forecast computes no signal: an upper bound)."""
        return self.judge.requests(pairs, ctx)

    def judge_pairs(self, pairs: Sequence[tuple[Record, Record]], ctx: JudgeContext) -> list[PairVerdict]:
        screened = self.screen([r for p in pairs for r in p], ctx)
        open_pairs = [(a, b) for a, b in pairs if a.id not in screened and b.id not in screened]
        ranked = dict(zip([(a.id, b.id) for a, b in open_pairs], self.judge.judge_pairs(open_pairs, ctx)))
        return [ranked[(a.id, b.id)] if (a.id, b.id) in ranked else screened_verdict(a, b, screened)
                for a, b in pairs]

    def diagnostics(self, verdicts: Sequence[PairVerdict]) -> dict:
        ranked = [v for v in verdicts if not v.reason.startswith("screened")]
        return {**self.judge.diagnostics(ranked), "pairs_decided_by_guard": len(verdicts) - len(ranked)}


@dataclass
class GuardedRatingJudge(_Guarded):
    def requests(self, records: Sequence[Record], ctx: JudgeContext) -> list:
        """The rater's calls if the guard screened nothing out (an upper bound)."""
        return self.judge.requests(records, ctx)

    def rate(self, records: Sequence[Record], ctx: JudgeContext) -> list[Rating]:
        screened = self.screen(records, ctx)
        rated = {x.id: x for x in self.judge.rate([r for r in records if r.id not in screened], ctx)}
        return [rated.get(r.id) or Rating(r.id, None, reason=f"screened: {screened[r.id]}") for r in records]


@dataclass
class RatingPairJudge:
    judge: Any  # a RatingJudge
    scale: float = 1.0  # rating difference that makes P(better) = 0.73
    name: str = "ratings"

    @property
    def uses_llm(self) -> bool:
        return self.judge.uses_llm

    @property
    def screens(self) -> bool:
        return self.judge.screens

    @property
    def claims_quality(self) -> bool:
        """The rater's claim (a rating judge compared pair by pair claims what it claims)."""
        return bool(getattr(self.judge, "claims_quality", True))

    def validate(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        self.judge.validate()

    def identity(self, ctx: JudgeContext) -> dict:
        return {"judge": type(self).__name__, "rater": self.judge.identity(ctx), "scale": self.scale}

    def screen(self, records, ctx) -> dict[str, str]:
        return self.judge.screen(records, ctx)

    def requests(self, pairs, ctx) -> list:
        return self.judge.requests(list({r.id: r for p in pairs for r in p}.values()), ctx)

    def judge_pairs(self, pairs: Sequence[tuple[Record, Record]], ctx: JudgeContext) -> list[PairVerdict]:
        unique = list({r.id: r for p in pairs for r in p}.values())
        screened = self.judge.screen(unique, ctx)  # e.g. IFD >= 1: such a record never wins
        rating = {x.id: x for x in self.judge.rate(unique, ctx)}
        out = []
        for a, b in pairs:
            if a.id in screened or b.id in screened:
                out.append(screened_verdict(a, b, screened))
                continue
            ra, rb = rating[a.id].value, rating[b.id].value
            if ra is None or rb is None:
                why = "; ".join(f"{x.id}: {rating[x.id].reason}" for x in (a, b) if rating[x.id].value is None)
                out.append(PairVerdict(a.id, b.id, None, reason=f"no rating: {why}"))
                continue
            p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, (ra - rb) / self.scale))))
            out.append(soft_verdict(a, b, p, points=((a.id, ra), (b.id, rb)), rating_first=ra, rating_second=rb))
        return out

    def diagnostics(self, verdicts: Sequence[PairVerdict]) -> dict:
        return {}  # no presentation order: nothing to be biased by


@dataclass
class Part:
    judge: Any  # a RatingJudge
    weight: float = 1.0


@dataclass
class WeightedRating(NoScreen):
    parts: list = field(default_factory=list)
    name: str = "weighted"

    @property
    def uses_llm(self) -> bool:
        return any(p.judge.uses_llm for p in self.parts)

    def validate(self) -> None:
        if not self.parts:
            raise ValueError("WeightedRating needs at least one part")
        for p in self.parts:
            p.judge.validate()

    def identity(self, ctx: JudgeContext) -> dict:
        return {"judge": type(self).__name__, "parts": [[p.judge.identity(ctx), p.weight] for p in self.parts]}

    def requests(self, records, ctx) -> list:
        return [q for p in self.parts for q in p.judge.requests(records, ctx)]

    def rate(self, records: Sequence[Record], ctx: JudgeContext) -> list[Rating]:
        columns = [p.judge.rate(records, ctx) for p in self.parts]
        out = []
        for k, r in enumerate(records):
            values = [col[k].value for col in columns]
            detail = {p.judge.name: v for p, v in zip(self.parts, values)}
            if any(v is None for v in values):
                out.append(Rating(r.id, None, detail, "a part has no rating"))
            else:
                out.append(Rating(r.id, round(sum(p.weight * v for p, v in zip(self.parts, values)), 6), detail))
        return out
