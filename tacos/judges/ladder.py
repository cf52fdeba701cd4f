"""The ladder: trivial rules a judge must beat before its ranking means anything.

A judge that agrees with labels 0.62 of the time says nothing if "the longer answer, unless it is only a little
longer" gets 0.68 on the same items. `tacos judge-eval` fits every rung on the suite's dev half (the sibling file
with `_dev` in place of `_test`), measures it on the judged items and reports it beside the judge; the gate asks a
paired test whether the judge is above the best rung (tacos.judges.gate).

Pair rungs (predict 1 / 1.5 / 2 like a judge's verdict; never invalid):
    always_longer, always_shorter
    length_ratio        the longer if it is >= t x the shorter's length, else the shorter (t fitted on dev)
    more_markdown       more markdown features (headings, bullets, numbered items, bold, code fences); equal: a tie
    markdown_then_ratio more markdown when the counts differ, else the length-ratio rule (t fitted on dev)
    relevance           MiniLM cos(instruction, response), higher wins (no fit; the scorer is injectable)
Rating rungs (a score per item, higher = better): length, markdown, relevance; the direction of length and markdown
is fitted on dev (the sign of their Spearman with the dev labels).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from tacos.data.preference_pairs import PreferencePair, SingleRating
from tacos.records import Record

# One match per markdown feature: a heading, a bullet, a numbered item, a code fence line, a bold span.
_MARKDOWN_LINE = re.compile(r"^ {0,3}#{1,6}\s|^\s*[-*+]\s+\S|^\s*\d{1,3}[.)]\s+\S|^\s*```", re.M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")

RelevanceScorer = Callable[[Sequence[Record]], list]  # records -> cos(instruction, response) per record (or None)


def markdown_count(text: str) -> int:
    return len(_MARKDOWN_LINE.findall(text)) + len(_BOLD.findall(text))


def higher_wins(x1: float | None, x2: float | None) -> float:
    """1 / 2: the output with the higher value; 1.5: equal (or a value missing)."""
    if x1 is None or x2 is None or x1 == x2:
        return 1.5
    return 1.0 if x1 > x2 else 2.0


def agreement(pred: float | None, label: float) -> float:
    """Per-item agreement on the 1 / 1.5 / 2 scale; no verdict counts as a tie (0.5)."""
    return 1.0 - abs((1.5 if pred is None else pred) - label)


# -- pair rungs --------------------------------------------------------------------------------------------------
class PairRung:
    name = ""

    def fit(self, pairs: Sequence[PreferencePair]) -> "PairRung":
        return self

    def predict(self, pairs: Sequence[PreferencePair]) -> list[float]:
        return [self.rule(p) for p in pairs]

    def rule(self, p: PreferencePair) -> float:
        raise NotImplementedError

    def params(self) -> dict:
        return {}


class AlwaysLonger(PairRung):
    name = "always_longer"

    def rule(self, p):
        return higher_wins(len(p.output_1), len(p.output_2))


class AlwaysShorter(PairRung):
    name = "always_shorter"

    def rule(self, p):
        return higher_wins(-len(p.output_1), -len(p.output_2))


def _ratio(p: PreferencePair) -> float:
    lo, hi = sorted((len(p.output_1), len(p.output_2)))
    return hi / max(lo, 1)


@dataclass
class LengthRatio(PairRung):
    """The longer if it is at least `threshold` x the shorter, else the shorter (t = 1: always-longer; t above
    every ratio: always-shorter). Fitted: the t of the highest dev agreement (the smallest such t)."""

    threshold: float = 1.0
    name = "length_ratio"

    def rule(self, p):
        longer = AlwaysLonger().rule(p)
        if longer == 1.5:
            return 1.5
        return longer if _ratio(p) >= self.threshold else 3.0 - longer

    def fit(self, pairs):
        ratios = sorted({_ratio(p) for p in pairs})
        candidates = [1.0, *ratios, (ratios[-1] if ratios else 1.0) * 1.01 + 1]
        best = -1.0
        for t in candidates:
            score = sum(agreement(LengthRatio(t).rule(p), p.preference) for p in pairs)
            if score > best + 1e-12:
                best, self.threshold = score, t
        return self

    def params(self):
        return {"threshold": round(self.threshold, 4)}


class MoreMarkdown(PairRung):
    name = "more_markdown"

    def rule(self, p):
        return higher_wins(markdown_count(p.output_1), markdown_count(p.output_2))


@dataclass
class MarkdownThenRatio(PairRung):
    """More markdown when the counts differ, else the length-ratio rule fitted on the dev pairs whose counts tie."""

    ratio: LengthRatio = field(default_factory=LengthRatio)
    name = "markdown_then_ratio"

    def rule(self, p):
        md = MoreMarkdown().rule(p)
        return md if md != 1.5 else self.ratio.rule(p)

    def fit(self, pairs):
        self.ratio.fit([p for p in pairs if MoreMarkdown().rule(p) == 1.5])
        return self

    def params(self):
        return self.ratio.params()


@dataclass
class Relevance(PairRung):
    """cos(instruction, response) of each side under its own instruction; the more relevant wins."""

    scorer: RelevanceScorer | None = None
    name = "relevance"

    def predict(self, pairs):
        records = [r for p in pairs for r in p.records()]
        scores = self.scorer(records) if records else []
        return [higher_wins(scores[2 * k], scores[2 * k + 1]) for k in range(len(pairs))]


def pair_rungs(relevance: RelevanceScorer | None = None) -> list[PairRung]:
    return [AlwaysLonger(), AlwaysShorter(), LengthRatio(), MoreMarkdown(), MarkdownThenRatio(),
            *([Relevance(relevance)] if relevance is not None else [])]


# -- rating rungs ------------------------------------------------------------------------------------------------
@dataclass
class RatingRung:
    """A score per item from one cheap feature; `direction` (+1 / -1) fitted on dev: the sign of its Spearman."""

    name: str
    feature: Callable[[Sequence[SingleRating]], list]
    direction: float = 1.0
    fits_direction: bool = True

    def fit(self, items: Sequence[SingleRating]) -> "RatingRung":
        from scipy.stats import spearmanr

        x, y = self.feature(items), [r.rating for r in items]
        if self.fits_direction and len(set(x)) > 1 and len(set(y)) > 1:
            rho = float(spearmanr(x, y).statistic)
            self.direction = -1.0 if rho < 0 else 1.0
        return self

    def predict(self, items: Sequence[SingleRating]) -> list:
        return [None if v is None else self.direction * v for v in self.feature(items)]

    def params(self) -> dict:
        return {"direction": self.direction}


def _rating_records(items: Sequence[SingleRating]) -> list[Record]:
    return [Record.make(k, r.instruction, r.input, r.output, source=r.id) for k, r in enumerate(items)]


def rating_rungs(relevance: RelevanceScorer | None = None) -> list[RatingRung]:
    rungs = [RatingRung("length", lambda items: [float(len(r.output)) for r in items]),
             RatingRung("markdown", lambda items: [float(markdown_count(r.output)) for r in items])]
    if relevance is not None:
        rungs.append(RatingRung("relevance", lambda items: relevance(_rating_records(items)), fits_direction=False))
    return rungs


# -- which dev half, and a relevance scorer ----------------------------------------------------------------------
def dev_half(suite_file: Path) -> tuple[Path, str]:
    """(the file the rungs are fitted on, what that is): the sibling `_dev` file of a `_test` suite; a dev file
    fits on itself; a file without a dev sibling fits on itself too (the rungs are then optimistic: said so)."""
    name = suite_file.name
    if "_test" in name:
        k = name.rindex("_test")
        dev = suite_file.with_name(name[:k] + "_dev" + name[k + len("_test"):])
        if dev.is_file():
            return dev, f"dev half {dev.name}"
        return suite_file, f"the measured file itself (no {dev.name} found: rungs fitted on the items they are " \
                           f"measured on, an optimistic ladder)"
    if "_dev" in name:
        return suite_file, "the measured dev file itself (rungs fitted and measured on the same items)"
    return suite_file, "the measured file itself (no _test/_dev name: rungs fitted on the items they are measured on)"


def minilm_relevance(model: str = "all-MiniLM-L6-v2") -> RelevanceScorer:
    """tacos.judges.signals.EmbeddingRelevance as a scorer (its own context: its seconds are not the judge's)."""
    from tacos.judges.base import JudgeContext
    from tacos.judges.signals import EmbeddingRelevance

    judge = EmbeddingRelevance(model=model)
    return lambda records: [r.value for r in judge.rate(list(records), JudgeContext(progress=False))]
