"""Which half a labelled row belongs to, decided by its SOURCE ROW (instruction + input text), never by a suite's ids.

One rule for every suite: an instruction is in the same half whichever suite or file it appears in, so nothing tuned
on a dev half has seen a test-half instruction of another suite, and a head trained on the train part never sees a
dev or test row.

    x = first 8 bytes of sha256(normalized instruction + "\\x1f" + normalized input) as a fraction of 2**64
    x < 0.5          -> "test"
    0.5 <= x < 0.75  -> "dev"
    x >= 0.75        -> "train"  (only suites with a training use split it off; for every other suite it is "dev")
"""
from __future__ import annotations

import hashlib
from typing import Literal

TEST_BELOW, DEV_BELOW = 0.5, 0.75


def normalized_text(text: str) -> str:
    """Whitespace collapsed, lower case: the form two source rows are compared in."""
    return " ".join((text or "").split()).lower()


def source_fraction(instruction: str, input: str = "") -> float:
    key = normalized_text(instruction) + "\x1f" + normalized_text(input)
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def source_split(instruction: str, input: str = "") -> Literal["train", "dev", "test"]:
    """train / dev / test of a source row (see the module docstring)."""
    x = source_fraction(instruction, input)
    return "test" if x < TEST_BELOW else "dev" if x < DEV_BELOW else "train"


def suite_half(instruction: str, input: str = "") -> Literal["dev", "test"]:
    """dev / test of a source row for a suite without a training part (train rows count as dev)."""
    return "test" if source_fraction(instruction, input) < TEST_BELOW else "dev"
