"""Contamination checks: n-gram overlap of selected training rows with test prompts, and exact-text overlap.

n-grams are hashed with blake2b (8 bytes), not Python's salted hash(), so reports are stable across runs.
An inverted index (n-gram -> test questions) keeps the check linear in the total number of n-grams.
ContaminationCheck is the `report` section of conf/config.yaml: the export stage's check against the test sets.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping

from tqdm import tqdm

from tacos.config import check_int, check_number

_WORD = re.compile(r"\w+")


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _hash(gram: tuple[str, ...]) -> int:
    # tokens are \w+ so they never contain a space: joining with one is unambiguous
    return int.from_bytes(hashlib.blake2b(" ".join(gram).encode("utf-8"), digest_size=8).digest(), "big")


def _grams(tokens: list[str], n: int) -> set[int]:
    return {_hash(tuple(tokens[i:i + n])) for i in range(len(tokens) - n + 1)}


def ngrams(text: str, n: int) -> set[int]:
    """Hashed word n-grams of the lowercased \\w+ tokens; a text shorter than n gives its whole token tuple."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    tokens = _tokens(text)
    return _grams(tokens, min(n, len(tokens))) if tokens else set()


def contamination_report(train: Mapping[str, str], tests: Mapping[str, Mapping[str, str]], n: int = 8,
                         threshold: float = 0.5) -> dict:
    """Flag (train row, test question) pairs sharing >= `threshold` of the question's n-grams.

    train: id -> text (instruction + input); tests: test set -> (question id -> text).
    overlap = |shared n-grams| / |question n-grams|. A question shorter than n tokens is one m-gram (m = its
    length), matched against the m-grams of the training texts.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    questions: list[tuple[str, str]] = []  # question number -> (test set, question id)
    n_grams: list[int] = []
    index: defaultdict[int, list[int]] = defaultdict(list)
    gram_lengths = set()  # the gram lengths the training texts must be cut into
    for name, items in tests.items():
        for qid, text in items.items():
            grams = ngrams(text, n)
            q = len(questions)
            questions.append((name, qid))
            n_grams.append(len(grams))
            for g in grams:
                index[g].append(q)
            if grams:
                gram_lengths.add(min(n, len(_tokens(text))))

    flagged: dict[str, list[tuple[str, str, float]]] = {name: [] for name in tests}
    for tid, text in tqdm(train.items(), desc="contamination", unit="row", disable=len(train) < 10_000):
        tokens = _tokens(text)
        shared: Counter[int] = Counter()
        for m in gram_lengths:
            for g in _grams(tokens, m):
                shared.update(index.get(g, ()))
        for q, count in shared.items():
            overlap = count / n_grams[q]
            if overlap >= threshold:
                name, qid = questions[q]
                flagged[name].append((tid, qid, round(overlap, 4)))

    per_set = {}
    for name, items in tests.items():
        hits = sorted(flagged[name], key=lambda h: (-h[2], str(h[0]), str(h[1])))
        per_set[name] = {"n_questions": len(items), "n_flagged": len({h[1] for h in hits}), "flagged": hits}
    n_train_flagged = len({h[0] for hits in flagged.values() for h in hits})
    return {"n": n, "threshold": threshold, "per_test_set": per_set, "n_train_flagged": n_train_flagged}


@dataclass
class ContaminationCheck:
    """The `report` section: the n-gram contamination report the export stage writes (contamination.json)."""

    contamination_ngram: int = 8
    contamination_threshold: float = 0.5

    def validate(self) -> None:
        check_int("report.contamination_ngram", self.contamination_ngram, 1)
        check_number("report.contamination_threshold", self.contamination_threshold, 0.0, 1.0, low_open=True)

    def run(self, train: Mapping[str, str], tests: Mapping[str, Mapping[str, str]]) -> dict:
        return contamination_report(train, tests, n=self.contamination_ngram,
                                    threshold=float(self.contamination_threshold))


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def overlap_with_reference(selected_texts: Iterable[str], reference_texts: Iterable[str]) -> dict:
    """How many selected texts appear verbatim (case and whitespace normalised) in the reference texts."""
    reference = {_normalise(t) for t in reference_texts}
    selected = [_normalise(t) for t in selected_texts]
    n_overlap = sum(t in reference for t in selected)
    return {"n_selected": len(selected), "n_reference": len(reference), "n_overlap": n_overlap,
            "fraction": n_overlap / len(selected) if selected else 0.0}
