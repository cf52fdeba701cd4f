"""Selectors (config group `selection`): pick the subset.

    PerCluster  the reference rule: clusters in ascending size, top `quota` of each by score, exact back-fill
    GlobalTop   the best `budget` records by their best score over clusters
    Threshold   AlpaGasus: score >= threshold, then a uniform seeded sample of `budget`
    Random, Longest, FullPool   baselines on the pool alone
    External    a subset chosen elsewhere (LIMA-1k, a released TACOS 1k), read from its file

Every selector reads only the stages named in `inputs`, and every chosen record carries its rationale. A new rule is
one class here and one YAML file in conf/selection/.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tacos.method import selection as rules
from tacos.records import Record, file_sha256


class Selector(Protocol):
    name: str
    budget: int | None  # None: no budget (the full pool, an external list)
    inputs: tuple[str, ...]  # stages it reads: () | ("data",) | ("data", "score")

    def validate(self) -> None: ...
    def identity(self) -> dict: ...  # file contents that determine the selection besides the config
    def select(self, pool: list[Record] | None, scores: list[dict] | None,
               seed: int) -> tuple[list[Record], list[rules.Selected]]: ...  # (the pool it chose from, the choice)


def candidates(pool: list[Record], scores: list[dict]) -> list[rules.Candidate]:
    """One candidate per (record, cluster) with a score; rows without a valid score are left out."""
    out_len = {r.id: len(r.output) for r in pool}
    return [rules.Candidate(id=r["id"], cluster=int(r["cluster"]), score=float(r["score"]),
                            raw_score=r.get("raw_score"), ci_low=r.get("ci_low"), ci_high=r.get("ci_high"),
                            output_len=out_len.get(r["id"], 0)) for r in scores if r["score"] is not None]


@dataclass
class _BudgetRule:
    """Shared parts of the rules that choose `budget` records from the pool."""

    name: str = ""
    budget: int | None = 1000

    inputs = ("data",)

    def validate(self) -> None:
        if self.budget is None or int(self.budget) < 1:
            raise ValueError(f"selection.budget must be a positive number for selection {self.name!r}, "
                             f"got {self.budget!r}")

    def identity(self) -> dict:
        return {}


@dataclass
class PerCluster(_BudgetRule):
    name: str = "tacos"
    quota: int | str = "auto"
    cluster_order: str = "ascending_size"
    backfill: bool = True
    backfill_key: str = "raw_score"

    inputs = ("data", "score")

    def select(self, pool, scores, seed: int = 0):
        return pool, rules.select_per_cluster(candidates(pool, scores), int(self.budget), quota=self.quota,
                                              cluster_order=self.cluster_order, backfill=self.backfill,
                                              backfill_key=self.backfill_key)


@dataclass
class GlobalTop(_BudgetRule):
    name: str = "global_top"

    inputs = ("data", "score")

    def select(self, pool, scores, seed: int = 0):
        return pool, rules.select_global_top(candidates(pool, scores), int(self.budget))


@dataclass
class Threshold(_BudgetRule):
    name: str = "alpagasus"
    threshold: float = 4.5

    inputs = ("data", "score")

    def select(self, pool, scores, seed: int = 0):
        best: dict[str, float] = {}
        for c in candidates(pool, scores):
            best[c.id] = max(best.get(c.id, float("-inf")), c.score)
        return pool, rules.select_threshold_uniform(best, float(self.threshold), int(self.budget), seed)


@dataclass
class Random(_BudgetRule):
    name: str = "random"

    def select(self, pool, scores=None, seed: int = 0):
        return pool, rules.select_random([r.id for r in pool], int(self.budget), seed)


@dataclass
class Longest(_BudgetRule):
    name: str = "longest"

    def select(self, pool, scores=None, seed: int = 0):
        return pool, rules.select_longest({r.id: len(r.output) for r in pool}, int(self.budget))


@dataclass
class FullPool(_BudgetRule):
    name: str = "full"
    budget: int | None = None

    def validate(self) -> None:
        return None

    def select(self, pool, scores=None, seed: int = 0):
        return pool, rules.select_all([r.id for r in pool])


@dataclass
class External(_BudgetRule):
    name: str = "external"
    budget: int | None = None
    path: str = ""

    inputs = ()

    def validate(self) -> None:
        if not (self.path and Path(self.path).expanduser().is_file()):
            raise FileNotFoundError(f"selection.path: external selection file {self.path!r} does not exist")

    def identity(self) -> dict:
        return {"path_sha256": file_sha256(Path(self.path).expanduser())}

    def select(self, pool=None, scores=None, seed: int = 0):
        from tacos.data import load_records

        path = Path(self.path).expanduser()
        records = load_records(path, name=path.stem, on_duplicate="drop")
        return records, [rules.Selected(id=r.id, cluster=None, score=None, rank=i, reason=f"external:{path.name}")
                         for i, r in enumerate(records)]
