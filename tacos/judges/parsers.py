"""How a judge's text answer is read (the `text_parser` of a judge config): each parser is an object with `parse`
(raises ParseError: the client re-asks, then records the call invalid) and `schema` (the JSON schema that constrains
the answer where the endpoint supports it, or None)."""
from __future__ import annotations

from dataclasses import dataclass

from tacos.llm.calling.parsing import ParseError, parse_score, parse_score_pair, parse_two_scores_line

__all__ = ["ParseError", "JsonScorePair", "FirstLineScores", "JsonScore", "score_schema"]


def score_schema(names: list[str], lo: float, hi: float) -> dict:
    # Small integer scales as enums: llama.cpp's grammar converter honours enum reliably.
    lo_i, hi_i = int(lo), int(hi)
    prop = {"type": "integer", "enum": list(range(lo_i, hi_i + 1))} if hi_i - lo_i <= 10 else \
        {"type": "integer", "minimum": lo_i, "maximum": hi_i}
    return {"type": "object", "properties": {n: prop for n in names}, "required": names}


@dataclass
class JsonScorePair:
    """{"score_1": n, "score_2": n} on [lo, hi]: the score stage's two-scores-per-call answer."""

    lo: float = 1
    hi: float = 6

    def parse(self, raw: str) -> tuple[float, float]:
        return parse_score_pair(raw, self.lo, self.hi)

    def schema(self) -> dict | None:
        return score_schema(["score_1", "score_2"], self.lo, self.hi)


@dataclass
class FirstLineScores:
    """A first line holding two scores ("8 7"), then an explanation: the judge stage's pairwise answer (FastChat /
    AlpaGasus style)."""

    lo: float = 1
    hi: float = 10

    def parse(self, raw: str) -> tuple[float, float]:
        return parse_two_scores_line(raw, self.lo, self.hi)

    def schema(self) -> dict | None:
        return None


@dataclass
class JsonScore:
    """{"score": n} on [lo, hi]: one record's score."""

    lo: float = 1
    hi: float = 6

    def parse(self, raw: str) -> float:
        return parse_score(raw, self.lo, self.hi)

    def schema(self) -> dict | None:
        return score_schema(["score"], self.lo, self.hi)
