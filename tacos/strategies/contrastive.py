"""The contrastive (pairwise) scorer: TACOS's core step.

A judge that only compares ratings (a rating judge, alone or behind a guard) is not paired at all: every record is
rated once and a cluster's order is its rating order, exactly (pairing and a Bradley-Terry refit would only blur it
with pairing luck). What follows is for judges that compare two records.

In every cluster, the records the judge does not screen out are paired: per round a seeded shuffle + adjacent
pairing (`rounds` > 1: a record meets several opponents; an odd member is paired again, nobody is dropped). The
PairJudge (conf/scorer/judge/*.yaml) compares each pair, in both presentation orders where position matters; its
outcomes feed a Bradley-Terry fit per cluster (strength + bootstrap CI), and the mean of the absolute numbers a
record got (judge scores, win probabilities or ratings) is its score comparable across clusters (`raw_score`,
what back-fill ranks by). A record that was screened out or never validly judged gets score None (excluded by
selection, listed with the reason), never a default.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from tacos.judges.base import JudgeContext, PairVerdict
from tacos.judges.combined import as_pair_judge, as_rating_judge
from tacos.method.bradley_terry import bradley_terry_ci
from tacos.method.scoring import make_pairs
from tacos.records import Record
from tacos.strategies.scorers import ScoreOutput, SingleScorer, clustered_ids, pairs_estimate, rounded

AGGREGATES = ("bradley_terry", "raw_mean")


@dataclass
class ContrastiveScorer:
    judge: Any = None  # a PairJudge
    name: str = "contrastive"
    rounds: int = 1
    aggregate: str = "bradley_terry"  # bradley_terry (ranking) | raw_mean (the mean absolute number)
    n_boot: int = 200  # bootstrap resamples for the Bradley-Terry confidence interval

    def __post_init__(self) -> None:
        if self.judge is not None:  # a rating judge compares records by their ratings
            self.judge = as_pair_judge(self.judge)

    @property
    def rater(self):
        """The rating judge when the judge only compares ratings: records are then ordered by rating, unpaired."""
        return as_rating_judge(self.judge)

    @property
    def uses_llm(self) -> bool:
        return self.judge.uses_llm

    def validate(self) -> None:
        if self.judge is None:
            raise ValueError(f"scorer {self.name}: set a judge, e.g. scorer/judge=guarded_length")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"scorer.aggregate must be one of {AGGREGATES}, not {self.aggregate!r}")
        if self.rounds < 1:
            raise ValueError("scorer.rounds must be >= 1")
        self.judge.validate()

    def identity(self, ctx: JudgeContext) -> dict:
        return self.judge.identity(ctx)

    # -- the pairs ----------------------------------------------------------------------------------------------
    def made_pairs(self, clusters: dict[int, list[str]], screened: dict[str, str], seed: int) -> dict[int, list]:
        return {c: make_pairs([i for i in clusters[c] if i not in screened], self.rounds, seed, salt=str(c))
                for c in sorted(clusters)}

    @staticmethod
    def unique_pairs(made: dict[int, list]) -> list[tuple[str, str]]:
        """Each unordered pair once (its lexically smaller member first): judged once, whatever the rounds."""
        return sorted({(min(a, b), max(a, b)) for pairs in made.values() for a, b in pairs})

    def requests(self, records, clusters, ctx: JudgeContext) -> list:
        """The LLM calls scoring would make, computing no signal: with a judge that screens, as if it screened
        nothing out (an upper bound; `judge.screens`)."""
        if self.rater is not None:
            return self.rater.requests([records[i] for i in clustered_ids(clusters)], ctx)
        unique = self.unique_pairs(self.made_pairs(clusters, {}, ctx.seed))
        return self.judge.requests([(records[a], records[b]) for a, b in unique], ctx)

    def estimated_calls(self, n_records: int) -> int:
        if self.rater is not None:
            return n_records if self.judge.uses_llm else 0
        return pairs_estimate(n_records, self.rounds, 2) if self.judge.uses_llm else 0

    def sample_requests(self, pool: list[Record], ctx: JudgeContext) -> list:
        n = len(pool)
        return self.judge.requests([(pool[i], pool[(i + 1) % n]) for i in range(min(n, 10))], ctx) if n > 1 else []

    # -- scoring ------------------------------------------------------------------------------------------------
    def score(self, records, clusters, ctx: JudgeContext) -> ScoreOutput:
        if self.rater is not None:
            return self.score_by_rating(records, clusters, ctx)
        screened = self.judge.screen([records[i] for i in clustered_ids(clusters)], ctx)
        made = self.made_pairs(clusters, screened, ctx.seed)
        unique = self.unique_pairs(made)
        verdicts = dict(zip(unique, self.judge.judge_pairs([(records[a], records[b]) for a, b in unique], ctx)))

        def verdict(a: str, b: str) -> PairVerdict:
            return verdicts[(a, b)] if (a, b) in verdicts else verdicts[(b, a)].flipped()

        rows, judgment_rows = [], []
        for c, pairs in made.items():
            comparisons, points = [], defaultdict(list)
            for a, b in pairs:
                v = verdict(a, b)
                comparisons += v.comparisons
                for rid, value in v.points:
                    points[rid].append(value)
                judgment_rows += judgment_rows_of(c, a, b, v)
            bt = bradley_terry_ci(clusters[c], comparisons, n_boot=self.n_boot, seed=ctx.seed)
            n_j: dict[str, int] = defaultdict(int)
            for a, b, _ in comparisons:
                n_j[a] += 1
                n_j[b] += 1
            for i in clusters[c]:
                est, lo, hi = bt[i] if n_j[i] else (None, None, None)  # never judged: no score, not 0
                absolute = sum(points[i]) / len(points[i]) if n_j[i] and points[i] else None
                row = {"id": i, "cluster": c, "score": rounded(est if self.aggregate == "bradley_terry" else absolute),
                       "ci_low": rounded(lo), "ci_high": rounded(hi), "raw_score": rounded(absolute),
                       "n_judgments": n_j[i]}
                if i in screened:
                    row["screened"] = screened[i]
                rows.append(row)
        judged = list(verdicts.values())
        invalid = sum(1 for v in judged if not v.valid)
        diagnostics = self.judge.diagnostics(judged)
        counts = {"clusters": len(clusters), "pairs": len(unique), "judgments": len(judgment_rows),
                  "invalid": invalid, "screened": len(screened), "scored": len(rows),
                  "unscored": sum(1 for r in rows if r["score"] is None)}
        stats = {"invalid_rate": round(invalid / max(1, len(unique)), 4), **diagnostics}
        dist = {"score": [r["score"] for r in rows if r["score"] is not None],
                "raw_score": [r["raw_score"] for r in rows if r["raw_score"] is not None]}
        table = {"columns": ["metric", "value"], "data": [[k, v] for k, v in diagnostics.items()]}
        return ScoreOutput(rows, judgment_rows, counts, stats, dist, {"position_bias": table} if diagnostics else {})

    def score_by_rating(self, records, clusters, ctx: JudgeContext) -> ScoreOutput:
        """Each record rated once; its score in every cluster is its rating (the back-fill value too)."""
        out = SingleScorer(judge=self.rater, name=self.name).score(records, clusters, ctx)
        out.judgments = []
        out.counts = {**out.counts, "pairs": 0, "judgments": 0}
        out.stats = {**out.stats, "ordered_by": "rating"}
        return out


def judgment_rows_of(cluster: int, a: str, b: str, v: PairVerdict) -> list[dict]:
    """judgments.jsonl rows of one pair: one per presentation order (OrderResult.row: the columns its read-out
    has), else one with what a judge without orders added (a guard's reason, two ratings), else the verdict."""
    if v.orders:
        return [{"cluster": cluster, **o.row()} for o in v.orders]
    if v.detail:
        return [{"cluster": cluster, **v.detail}]
    return [{"cluster": cluster, "first": a, "second": b, "p_first": rounded(v.p_first), "reason": v.reason}]
