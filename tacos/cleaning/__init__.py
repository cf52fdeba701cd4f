"""Cleaning (config group `clean`): remove the rows of a pool that have a defect real instruction data has, each with
its reason, before any tagging or scoring call is spent on them.

    Cleaner([PlaceholderOutput(), UnseenMaterial(), ...])   runs every check; a row failing any is removed
    a check:  name: str; check(records) -> {record id: why it is defective}

The checks (tacos.cleaning.rules, tacos.cleaning.arithmetic) are rules: deterministic, no model, instant on 52k rows.
What each catches and misses, measured on the real-defects suite and the AlpaGasus-rated rows, is in the README
("Cleaning"); measurements/bench_clean.py rebuilds that table. A new check is one class with `name` and `check`, and one
entry in conf/clean/default.yaml.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

from tacos.records import Record


@runtime_checkable
class RowCheck(Protocol):
    name: str

    def check(self, records: Sequence[Record]) -> dict[str, str]: ...  # id -> reason, only for defective rows


@dataclass
class Cleaning:
    """What a Cleaner decided: the rows kept (in pool order) and, for each removed row, every check it failed."""

    kept: list[Record]
    removed: list[dict]  # {"id", "index", "checks": {check name: reason}, "instruction", "input", "output"}
    counts: dict[str, int]  # check name -> rows it flags (a row failing two checks counts in both)


@dataclass
class Cleaner:
    checks: list = field(default_factory=list)

    def validate(self) -> None:
        names = [c.name for c in self.checks]
        for c in self.checks:
            if not isinstance(c, RowCheck):
                raise ValueError(f"clean.checks: {type(c).__name__} has no `name` and `check(records)`")
        if len(set(names)) != len(names):
            raise ValueError(f"clean.checks: two checks share a name: {names}")

    def clean(self, records: Sequence[Record]) -> Cleaning:
        flagged: dict[str, dict[str, str]] = {}
        counts = {}
        for c in self.checks:
            found = c.check(records)
            counts[c.name] = len(found)
            for rid, reason in found.items():
                flagged.setdefault(rid, {})[c.name] = reason
        kept = [r for r in records if r.id not in flagged]
        removed = [{"id": r.id, "index": r.index, "checks": flagged[r.id], "instruction": r.instruction,
                    "input": r.input, "output": r.output} for r in records if r.id in flagged]
        return Cleaning(kept, removed, counts)
