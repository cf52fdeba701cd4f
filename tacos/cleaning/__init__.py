"""Cleaning (config group `clean`): remove the rows of a pool that have a defect real instruction data has, each with
its reason, before any tagging or scoring call is spent on them.

    Cleaner([PlaceholderOutput(), UnseenMaterial(), ...])   runs every check; a row failing any is removed
    a rule check:   name: str; check(records) -> {record id: why it is defective}
    a model check:  name: str; uses_llm = True; check(records, ctx) -> {id: why}; requests(records, seed) -> the
                    LLM calls it would make (dry-run forecast); identity() -> its prompt hashes (stage identity)

The rules (tacos.cleaning.rules, tacos.cleaning.arithmetic) are deterministic, need no model and are instant on 52k
rows. Model checks (tacos.cleaning.model_checks) ask the run's LLM session (ctx.run_llm) and see only the rows every
rule kept (no call is spent on a row already removed); a row a model check cannot judge is kept and listed with the
reason (Cleaning.unjudged). What each catches and misses, measured on the real-defects suite and the AlpaGasus-rated
rows, is in the README ("Cleaning"); measurements/bench_clean.py rebuilds that table. A new check is one class and one
entry in conf/clean/default.yaml.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from tacos.records import Record


@runtime_checkable
class RowCheck(Protocol):
    name: str

    def check(self, records: Sequence[Record]) -> dict[str, str]: ...  # id -> reason, only for defective rows


def uses_llm(check: Any) -> bool:
    return bool(getattr(check, "uses_llm", False))


@dataclass
class CleanContext:
    """What a model check may use: the run's LLM session (None in a dry run or a run without one: model checks are
    then skipped and say so), the seed, and where it records what it judged and what it could not."""

    llm: Any = None  # tacos.llm.calling.session.LLMSession
    seed: int = 0
    stats: dict = field(default_factory=dict)  # llm_calls, prompt_tokens, completion_tokens (cached calls included)
    rows: list[dict] = field(default_factory=list)  # {"id", "index", "check", ...what it read (e.g. p_wrong)}
    not_judged: list[dict] = field(default_factory=list)  # {"id", "index", "check", "reason"}: kept, never removed

    def run_llm(self, requests: Sequence, parser, desc: str) -> list:
        results = self.llm.run(requests, parser, desc=desc)
        for name, value in (("llm_calls", len(results)), ("prompt_tokens", sum(r.prompt_tokens for r in results)),
                            ("completion_tokens", sum(r.completion_tokens for r in results))):
            self.stats[name] = self.stats.get(name, 0) + value
        return results

    def judged(self, check: str, r: Record, **read: Any) -> None:
        self.rows.append({"id": r.id, "index": r.index, "check": check, **read})

    def unjudged(self, check: str, r: Record, reason: str) -> None:
        self.not_judged.append({"id": r.id, "index": r.index, "check": check, "reason": reason})


@dataclass
class Cleaning:
    """What a Cleaner decided: the rows kept (in pool order) and, for each removed row, every check it failed."""

    kept: list[Record]
    removed: list[dict]  # {"id", "index", "checks": {check name: reason}, "instruction", "input", "output"}
    counts: dict[str, int]  # check name -> rows it flags (a row failing two checks counts in both)
    model_rows: list[dict] = field(default_factory=list)  # every row a model check asked about, with what it read
    unjudged: list[dict] = field(default_factory=list)  # rows a model check could not judge (kept), with the reason
    skipped: list[str] = field(default_factory=list)  # model checks not run (no LLM session: a dry run's forecast)


@dataclass
class Cleaner:
    checks: list = field(default_factory=list)

    @property
    def uses_llm(self) -> bool:
        return any(uses_llm(c) for c in self.checks)

    def validate(self) -> None:
        names = [c.name for c in self.checks]
        for c in self.checks:
            if not isinstance(c, RowCheck):
                raise ValueError(f"clean.checks: {type(c).__name__} has no `name` and `check(records)`")
            if uses_llm(c) and not hasattr(c, "requests"):
                raise ValueError(f"clean.checks: model check {c.name} has no `requests(records, seed)` to forecast")
            if hasattr(c, "validate"):
                c.validate()
        if len(set(names)) != len(names):
            raise ValueError(f"clean.checks: two checks share a name: {names}")

    @staticmethod
    def context(llm: Any = None, seed: int = 0) -> CleanContext:
        return CleanContext(llm=llm, seed=seed)

    def identity(self) -> dict:
        """The prompt hashes of the model checks (their verdicts change when a prompt file does)."""
        return {c.name: c.identity() for c in self.checks if uses_llm(c) and hasattr(c, "identity")}

    def requests(self, records: Sequence[Record], seed: int) -> list:
        """The LLM calls `clean` would make: the model checks' requests for the rows every rule keeps."""
        kept = self._rules(records)[1]
        return [q for c in self.checks if uses_llm(c) for q in c.requests(kept, seed)]

    def _rules(self, records: Sequence[Record]) -> tuple[dict[str, dict[str, str]], list[Record], dict[str, int]]:
        flagged: dict[str, dict[str, str]] = {}
        counts = {}
        for c in self.checks:
            if uses_llm(c):
                continue
            found = c.check(records)
            counts[c.name] = len(found)
            for rid, reason in found.items():
                flagged.setdefault(rid, {})[c.name] = reason
        return flagged, [r for r in records if r.id not in flagged], counts

    def clean(self, records: Sequence[Record], ctx: CleanContext | None = None) -> Cleaning:
        """Rules first, on every row; then each model check on the rows no rule removed (in config order, each on the
        rows the model checks before it kept too). Without an LLM session in `ctx` the model checks are skipped."""
        ctx = ctx or CleanContext()
        flagged, rest, counts = self._rules(records)
        skipped = []
        for c in self.checks:
            if not uses_llm(c):
                continue
            if ctx.llm is None:
                skipped.append(c.name)
                continue
            found = c.check(rest, ctx)
            counts[c.name] = len(found)
            for rid, reason in found.items():
                flagged.setdefault(rid, {})[c.name] = reason
            rest = [r for r in rest if r.id not in found]
        counts = {c.name: counts.get(c.name, 0) for c in self.checks}  # config order
        kept = [r for r in records if r.id not in flagged]
        removed = [{"id": r.id, "index": r.index, "checks": flagged[r.id], "instruction": r.instruction,
                    "input": r.input, "output": r.output} for r in records if r.id in flagged]
        return Cleaning(kept, removed, counts, ctx.rows, ctx.not_judged, skipped)
