"""Trivial-ladder rungs as rating judges: what the default ranks by when no candidate beats the ladder.

    ResponseLength    the response's length in characters (direction +1: longer first)
    MarkdownCount     headings, bullets, numbered items, code fences, bold spans (tacos.judges.ladder.markdown_count)

They claim no quality ranking (`claims_quality = False`): the gate then holds them (and a guard in front of them) to
its screening rules only, and every report says "no quality ranking claimed". README "Judges" says why the default
orders by length: it is the best rung on the labelled ratings, and no measured candidate beat it on held-out labels.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from tacos.judges.base import JudgeContext, NoScreen, Rating
from tacos.records import Record


@dataclass
class _Rung(NoScreen):
    name: str = ""
    direction: float = 1.0  # +1: more is better; -1: less is better
    claims_quality: bool = False

    uses_llm = False

    def validate(self) -> None:
        if self.direction not in (1.0, -1.0):
            raise ValueError(f"{self.name}: direction must be 1 or -1, got {self.direction}")

    def identity(self, ctx: JudgeContext) -> dict:
        return {"judge": type(self).__name__, "direction": self.direction}

    def requests(self, records, ctx) -> list:
        return []

    def value(self, text: str) -> float:
        raise NotImplementedError

    def rate(self, records: Sequence[Record], ctx: JudgeContext) -> list[Rating]:
        t0 = time.perf_counter()
        out = [Rating(r.id, self.direction * self.value(r.output)) if r.output.strip() else
               Rating(r.id, None, reason="empty response") for r in records]
        ctx.add_seconds(time.perf_counter() - t0)
        return out


@dataclass
class ResponseLength(_Rung):
    name: str = "length"

    def value(self, text: str) -> float:
        return float(len(text))


@dataclass
class MarkdownCount(_Rung):
    name: str = "markdown"

    def value(self, text: str) -> float:
        from tacos.judges.ladder import markdown_count

        return float(markdown_count(text))
