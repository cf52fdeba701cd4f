"""Pair judges with no model, for the ladder and gate tests: one built from the length-ratio rule, one that knows the
labels but abstains on hard pairs, one that knows the labels and errs on every tenth pair; and synthetic suites whose
labels follow the length-ratio rule up to noise (no markdown, so only the length rungs matter)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tacos.data.preference_pairs import load_preference_pairs
from tacos.judges.base import NoScreen, PairVerdict
from tacos.judges.ladder import LengthRatio, _ratio


def write_suite(path: Path, n: int, seed: int, noise: float, threshold: float = 2.0) -> Path:
    """n pairs of plain text; the label is "the longer if >= threshold x longer, else the shorter", flipped on a
    `noise` share of the pairs."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        a, b = int(rng.integers(20, 400)), int(rng.integers(20, 400))
        if a == b:
            b += 1
        longer = 1 if a > b else 2
        pref = longer if max(a, b) / min(a, b) >= threshold else 3 - longer
        if rng.random() < noise:
            pref = 3 - pref
        rows.append({"id": f"s{seed}-{k}", "instruction": f"Task {k}.", "output_1": f"{k}:" + "x" * a,
                     "output_2": f"{k}:" + "y" * b, "preference": pref, "subset": "toy"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@dataclass
class LabelJudge(NoScreen):
    """mode "ratio": the length-ratio rule fitted on `dev` (no other signal); "abstain": the label on easy pairs
    (length ratio outside [1.5, 3]), no verdict on the others; "oracle": the label, wrong on every tenth pair."""

    mode: str = "oracle"
    suite: str = ""  # the labelled file it measures (abstain / oracle read the labels from it)
    dev: str = ""  # ratio: the dev file its threshold is fitted on
    name: str = "label_judge"
    claims_quality: bool = True

    uses_llm = False

    def validate(self) -> None:
        assert self.mode in ("ratio", "abstain", "oracle")

    def identity(self, ctx) -> dict:
        return {"judge": "LabelJudge", "mode": self.mode}

    def requests(self, pairs, ctx) -> list:
        return []

    def diagnostics(self, verdicts) -> dict:
        return {}

    def absolute(self, records, ctx) -> dict:
        return {}

    def judge_pairs(self, pairs, ctx) -> list[PairVerdict]:
        suite = {(p.output_1, p.output_2): p for p in load_preference_pairs(self.suite)}
        rule = LengthRatio().fit(load_preference_pairs(self.dev)) if self.mode == "ratio" else None
        out = []
        for k, (a, b) in enumerate(pairs):
            p = suite[(a.output, b.output)]
            if self.mode == "ratio":
                pred = rule.rule(p)
            elif self.mode == "abstain":
                pred = None if 1.5 <= _ratio(p) <= 3.0 else p.preference
            else:
                pred = 3.0 - p.preference if k % 10 == 0 else p.preference
            out.append(PairVerdict(a.id, b.id, None if pred is None else 2.0 - pred))
        return out


def write_ratings(path: Path, n: int, seed: int) -> Path:
    """Binary ratings (1 / 10) that length predicts a little (longer is better 60 % of the time)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        good = bool(rng.random() < 0.4)
        length = int(rng.integers(20, 300)) + (60 if good else 0)
        rows.append({"id": f"r{seed}-{k}", "instruction": f"Task {k}.", "output": f"{k}:" + "x" * length,
                     "rating": 10 if good else 1, "subset": "toy"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@dataclass
class LabelRater(NoScreen):
    """mode "length": the response's length; "oracle": the label, inverted on every tenth item."""

    mode: str = "oracle"
    suite: str = ""
    name: str = "label_rater"

    uses_llm = False

    def validate(self) -> None:
        assert self.mode in ("length", "oracle")

    def identity(self, ctx) -> dict:
        return {"judge": "LabelRater", "mode": self.mode}

    def requests(self, records, ctx) -> list:
        return []

    def rate(self, records, ctx) -> list:
        from tacos.data.preference_pairs import load_single_ratings
        from tacos.judges.base import Rating

        labels = {r.output: r.rating for r in load_single_ratings(self.suite)}
        out = []
        for k, r in enumerate(records):
            v = float(len(r.output)) if self.mode == "length" else labels[r.output] * (-1 if k % 10 == 0 else 1)
            out.append(Rating(r.id, v))
        return out
