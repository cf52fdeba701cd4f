"""Labelled judge-evaluation data: preference pairs and single-answer ratings.

A judge's scores drive data selection, so it is measured first against labels (alpaca_eval's evaluator
leaderboard is the model). Pairs use alpaca_eval's annotation format (JSON list or JSON Lines, .gz too):
`instruction`, `input`?, `output_1`, `output_2`, `preference` (1 or 2; 0 or 1.5 = tie), `id`?, `subset`?, and
`instruction_2` / `input_2`? when output_2 answers another instruction (two records of one cluster, as the contrastive
scorer compares them); any other field is kept in `extra`. Every problem raises `DataError` naming the file, the row and the problem,
before anything is returned: a judge measured on silently repaired labels would be measured on the wrong thing.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tacos.data.loaders import DataError, _read_rows
from tacos.records import Record

TIE = 1.5
_PREFERENCES = {1: 1.0, 2: 2.0, 1.5: TIE, 0: TIE}  # alpaca_eval writes a tie as 0 or 1.5; we keep 1.5
_PAIR_KEYS = ("id", "instruction", "input", "output_1", "output_2", "preference", "subset", "instruction_2", "input_2")
_RATING_KEYS = ("id", "instruction", "question", "input", "output", "rating", "subset")


@dataclass(frozen=True)
class PreferencePair:
    """One labelled pair; `preference` 1.0 = output_1 is better, 2.0 = output_2, 1.5 = tie."""

    id: str
    instruction: str
    input: str
    output_1: str
    output_2: str
    preference: float
    subset: str = "all"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    instruction_2: str | None = None  # output_2's own instruction when it answers another one
    input_2: str | None = None

    def records(self) -> tuple[Record, Record]:
        """The two (instruction, input, output) records a judge compares."""
        second = (self.instruction_2 if self.instruction_2 is not None else self.instruction,
                  self.input_2 if self.instruction_2 is not None else self.input)
        return (Record.make(0, self.instruction, self.input, self.output_1, source=self.id),
                Record.make(1, *second, self.output_2, source=self.id))


@dataclass(frozen=True)
class SingleRating:
    """One answer with a reference judge's rating: 1-10 (MT-Bench single-answer grading) or 0/1 (a binary label)."""

    id: str
    instruction: str
    input: str
    output: str
    rating: float
    subset: str = "all"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def content_id(prefix: str, *texts: str) -> str:
    """Stable id from the row's text: the same content gets the same id in every run and on every machine."""
    return prefix + hashlib.sha256("\x1f".join(texts).encode("utf-8")).hexdigest()[:16]


def split_of(id: str, test_fraction: float = 0.5) -> Literal["dev", "test"]:
    """"test" when the first 8 bytes of sha256(id), read as a fraction of 2**64, fall below `test_fraction`.

    A fixed hash (not Python's salted `hash()`) keeps a row in the same split forever, whichever file,
    machine or row order it comes from, so prompts tuned on "dev" never see a "test" label.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    x = int.from_bytes(hashlib.sha256(id.encode("utf-8")).digest()[:8], "big") / 2**64
    return "test" if x < test_fraction else "dev"


def _text(row: dict, key: str, loc: str, *, required: bool = True, nonempty: bool = False) -> str:
    if key not in row or row[key] is None:
        if required:
            raise DataError(f"{loc}: missing {key!r} (row keys: {sorted(row)}).")
        return ""
    value = row[key]
    if not isinstance(value, str):
        raise DataError(f"{loc}: {key!r} must be a string, got {type(value).__name__}.")
    if nonempty and not value.strip():
        raise DataError(f"{loc}: {key!r} is empty or whitespace-only.")
    return value


def _number(row: dict, key: str, loc: str) -> float:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{loc}: {key!r} must be a finite number, got {value!r}.")
    return float(value)


def _rows(path: str | Path) -> list[tuple[dict, str]]:
    file = Path(path).expanduser().absolute()
    if not file.is_file():
        raise DataError(f"{file}: file not found (expected a JSON array or JSON Lines file, .gz allowed).")
    rows = _read_rows(file, max_row_bytes=10_000_000)
    if not rows:
        raise DataError(f"{file}: no rows.")
    for row, loc in rows:
        if not isinstance(row, dict):
            raise DataError(f"{loc}: a row must be a JSON object, got {type(row).__name__}.")
    return rows


def _check_new(id: str, loc: str, seen: dict[str, str]) -> None:
    """Reject duplicate ids: two labels for one id would be counted twice or contradict each other."""
    if id in seen:
        raise DataError(f"{loc}: duplicate id {id!r} (first used at {seen[id]}); ids must be unique.")
    seen[id] = loc


def load_preference_pairs(path: str | Path) -> list[PreferencePair]:
    """Validated pairs of one alpaca_eval-format file, in file order; ties normalised to 1.5."""
    pairs: list[PreferencePair] = []
    seen: dict[str, str] = {}
    for row, loc in _rows(path):
        instruction = _text(row, "instruction", loc, nonempty=True)
        input = _text(row, "input", loc, required=False)
        out1, out2 = _text(row, "output_1", loc), _text(row, "output_2", loc)
        raw = _number(row, "preference", loc)
        if raw not in _PREFERENCES:
            raise DataError(f"{loc}: 'preference' must be 1 or 2 (0 or 1.5 = tie), got {row['preference']!r}.")
        pref = _PREFERENCES[raw]
        instruction_2 = _text(row, "instruction_2", loc, required=False, nonempty=True) if "instruction_2" in row \
            else None
        input_2 = _text(row, "input_2", loc, required=False) if instruction_2 is not None else None
        if out1 == out2 and pref != TIE and instruction_2 is None:
            raise DataError(f"{loc}: output_1 and output_2 are identical but 'preference' is {pref:g}, not a tie.")
        pid = _text(row, "id", loc, nonempty=True) if "id" in row else content_id("p", instruction, input, out1, out2)
        subset = _text(row, "subset", loc, nonempty=True) if "subset" in row else "all"
        _check_new(pid, loc, seen)
        extra = {k: v for k, v in row.items() if k not in _PAIR_KEYS}
        pairs.append(PreferencePair(pid, instruction, input, out1, out2, pref, subset, extra, instruction_2, input_2))
    return pairs


def load_single_ratings(path: str | Path) -> list[SingleRating]:
    """Validated single-answer ratings (1-10 grades or 0/1 labels; `question` is accepted for `instruction`), in file
    order."""
    items: list[SingleRating] = []
    seen: dict[str, str] = {}
    for row, loc in _rows(path):
        key = "instruction" if "instruction" in row or "question" not in row else "question"
        instruction = _text(row, key, loc, nonempty=True)
        input, output = _text(row, "input", loc, required=False), _text(row, "output", loc)
        rating = _number(row, "rating", loc)
        if not 0.0 <= rating <= 10.0:  # 1-10 grades; 0/1 binary labels (AlpaGasus: rated >= 4.5 or not)
            raise DataError(f"{loc}: 'rating' must be between 0 and 10, got {row['rating']!r}.")
        rid = _text(row, "id", loc, nonempty=True) if "id" in row else content_id("s", instruction, input, output)
        subset = _text(row, "subset", loc, nonempty=True) if "subset" in row else "all"
        _check_new(rid, loc, seen)
        extra = {k: v for k, v in row.items() if k not in _RATING_KEYS or k in ("instruction", "question") and k != key}
        items.append(SingleRating(rid, instruction, input, output, rating, subset, extra))
    return items
