"""Scorers (config group `scorer`): a quality score for every clustered record, from a judge (tacos.judges).

    ContrastiveScorer  (pairwise.py) records of one cluster compared in pairs by a PairJudge, Bradley-Terry
    SingleScorer       each record rated alone by a RatingJudge (the wo_contrastive ablation; AlpaGasus's 0-5)
    LengthScorer       response length in characters (no judge)

The judge is the scorer's nested `judge:` (conf/scorer/judge/*.yaml). A record the judge screens out (a relevance
guard) or that no valid judgment scored gets score None: it is excluded from selection and listed with the reason,
never ranked as if it had scored 0. A new scorer is one class with this protocol and one YAML file in conf/scorer/.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from tacos.judges.base import JudgeContext
from tacos.llm.calling.types import LLMRequest
from tacos.records import Record


@dataclass
class ScoreOutput:
    rows: list[dict]  # scores.jsonl: {"id", "cluster", "score" (None: not scored), "raw_score", ...}
    judgments: list[dict] | None = None  # judgments.jsonl (pairwise scorers)
    counts: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    distributions: dict[str, list[float]] = field(default_factory=dict)  # for the histogram
    tables: dict[str, dict] = field(default_factory=dict)  # name -> {"columns", "data"}


class Scorer(Protocol):
    name: str
    judge: Any  # the judge whose verdicts the scores come from (None: no judge)

    @property
    def uses_llm(self) -> bool: ...
    def validate(self) -> None: ...
    def identity(self, ctx: JudgeContext) -> dict: ...  # the judge's identity (prompts, models, read-out)
    def requests(self, records: dict[str, Record], clusters: dict[int, list[str]],
                 ctx: JudgeContext) -> list[LLMRequest]: ...  # the exact LLM work once the clusters exist
    def estimated_calls(self, n_records: int) -> int: ...  # before the clusters exist (dry runs)
    def sample_requests(self, pool: list[Record], ctx: JudgeContext) -> list[LLMRequest]: ...  # token estimate
    def score(self, records: dict[str, Record], clusters: dict[int, list[str]], ctx: JudgeContext) -> ScoreOutput: ...


def rounded(x):
    return None if x is None else round(float(x), 6)


def clustered_ids(clusters: dict[int, list[str]]) -> list[str]:
    return sorted({i for members in clusters.values() for i in members})


@dataclass
class SingleScorer:
    """One record at a time: the judge's rating is the score."""

    judge: Any = None  # a RatingJudge
    name: str = "single"

    @property
    def uses_llm(self) -> bool:
        return self.judge.uses_llm

    def validate(self) -> None:
        if self.judge is None or not hasattr(self.judge, "rate"):
            raise ValueError(f"scorer {self.name}: judge must be a rating judge (one with rate()), e.g. "
                             f"scorer/judge=llm_digit")
        self.judge.validate()

    def identity(self, ctx: JudgeContext) -> dict:
        return self.judge.identity(ctx)

    def requests(self, records, clusters, ctx: JudgeContext) -> list[LLMRequest]:
        return self.judge.requests([records[i] for i in clustered_ids(clusters)], ctx)

    def estimated_calls(self, n_records: int) -> int:
        return n_records if self.judge.uses_llm else 0

    def sample_requests(self, pool: list[Record], ctx: JudgeContext) -> list[LLMRequest]:
        return self.judge.requests(pool[:20], ctx)

    def score(self, records, clusters, ctx: JudgeContext) -> ScoreOutput:
        ids = clustered_ids(clusters)
        ratings = {r.id: r for r in self.judge.rate([records[i] for i in ids], ctx)}
        rows = []
        for c in sorted(clusters):
            for i in clusters[c]:
                v = rounded(ratings[i].value)
                row = {"id": i, "cluster": c, "score": v, "raw_score": v, "ci_low": None, "ci_high": None,
                       "n_judgments": int(v is not None)}
                if v is None and ratings[i].reason.startswith("screened"):
                    row["screened"] = ratings[i].reason.removeprefix("screened: ")
                rows.append(row)
        invalid = sum(1 for i in ids if ratings[i].value is None and not ratings[i].reason.startswith("screened"))
        counts = {"clusters": len(clusters), "rated": len(ids), "invalid": invalid,
                  "screened": sum(1 for r in rows if "screened" in r), "scored": len(rows),
                  "unscored": sum(1 for r in rows if r["score"] is None)}
        return ScoreOutput(rows, None, counts, {"invalid_rate": round(invalid / max(1, len(ids)), 4)},
                           {"score": [r["score"] for r in rows if r["score"] is not None]})


@dataclass
class LengthScorer:
    name: str = "length"
    judge: Any = None

    uses_llm = False

    def validate(self) -> None:
        return None

    def identity(self, ctx: JudgeContext) -> dict:
        return {}

    def requests(self, records, clusters, ctx) -> list[LLMRequest]:
        return []

    def estimated_calls(self, n_records: int) -> int:
        return 0

    def sample_requests(self, pool, ctx) -> list[LLMRequest]:
        return []

    def score(self, records, clusters, ctx=None) -> ScoreOutput:
        rows = [{"id": i, "cluster": c, "score": float(len(records[i].output)),
                 "raw_score": float(len(records[i].output)), "ci_low": None, "ci_high": None, "n_judgments": 0}
                for c in sorted(clusters) for i in clusters[c]]
        return ScoreOutput(rows, None, {"scored": len(rows)}, {}, {"score": [r["score"] for r in rows]})


def pairs_estimate(n_records: int, rounds: int, orders: int) -> int:
    """Calls of a pairwise scorer before the clusters exist: ceil(n/2) pairs per round and order (assumes about
    one cluster membership per record after label-set dedup)."""
    return math.ceil(n_records / 2) * rounds * orders
