"""Tolerant parsers for LLM answers: pure functions that return a value or raise `ParseError`.

They never fall back to a default value (the original scorer mapped every unparsable answer to 0,
method_spec §17): the client retries on `ParseError` and finally marks the call "invalid".
"""
from __future__ import annotations

import json
import re
from typing import Any


class ParseError(ValueError):
    """The text holds no usable answer in the expected format."""


_NUM = r"(-?\d+(?:\.\d+)?)"
_CURLY = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)


def _preview(text: str, n: int = 120) -> str:
    return repr(text[:n] + ("…" if len(text) > n else ""))


def _json_candidates(text: str):
    """Yield the JSON values found in `text`: the whole text, fenced blocks, then balanced {...}/[...] spans."""
    decoder = json.JSONDecoder()
    stripped = text.strip()
    try:
        yield json.loads(stripped)
    except ValueError:
        pass
    for block in _FENCE.findall(text):
        try:
            yield json.loads(block.strip())
        except ValueError:
            pass
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                # raw_decode finds the balanced end itself, strings and escapes included.
                yield decoder.raw_decode(text, i)[0]
            except ValueError:
                continue


def extract_json(text: str) -> Any:
    """Return the first JSON value in `text` (raw JSON, a ```json fence, or the first balanced {...}/[...]
    in prose). Curly quotes are normalised only when the text does not parse as written, so a literal
    “quote” inside a valid JSON string is kept."""
    for candidate_text in (text, text.translate(_CURLY)):
        for value in _json_candidates(candidate_text):
            return value
    raise ParseError(f"no JSON value found in {_preview(text)}")


def _in_range(value: float, lo: float | None, hi: float | None, what: str, text: str) -> float:
    if (lo is not None and not value >= lo) or (hi is not None and not value <= hi):
        raise ParseError(f"{what} {value} is outside [{lo}, {hi}] in {_preview(text)}")
    return value


def _as_number(value: Any, what: str, text: str) -> float:
    if isinstance(value, bool):
        raise ParseError(f"{what} is a boolean in {_preview(text)}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ParseError(f"{what} {value!r} is not a number in {_preview(text)}") from None


def _json_dict(text: str) -> dict | None:
    try:
        value = extract_json(text)
    except ParseError:
        return None
    return value if isinstance(value, dict) else None


def _response_score_pattern(k: int) -> re.Pattern:
    # "[Response 1] Score: 5", "[Response 1] Score:<5>", "[Response 1]: [85]", "**Response 1:** 7.5".
    # (?!\d) keeps "Response 12" from matching k=1; the number must follow "Score" or ":" directly.
    return re.compile(
        rf"\[?\s*Response\s*{k}(?!\d)\s*\]?[*\s]*(?:Score[*\s]*:?|:)[*\s]*(?:Score[*\s]*:?[*\s]*)?"
        rf"[\[<(【]?\s*{_NUM}", re.IGNORECASE)


_PAIR_PATTERNS = {k: _response_score_pattern(k) for k in (1, 2)}
_PAIR_JSON_KEYS = {1: ("score_1", "score1"), 2: ("score_2", "score2")}


def parse_score_pair(text: str, lo: float, hi: float) -> tuple[float, float]:
    """Scores of Response 1 and Response 2 from a pairwise judgement, each range-checked.

    Accepts "[Response 1] Score: 5", "[Response 1] Score:5", "[Response 1]: [85]", "Response 1: 7.5"
    (the first mention of each response wins, as in the original scorer) and JSON
    {"score_1": .., "score_2": ..}. A missing score raises ParseError (never 0).
    """
    scores: dict[int, float] = {}
    for k, pattern in _PAIR_PATTERNS.items():
        m = pattern.search(text)
        if m:
            scores[k] = float(m.group(1))
    if len(scores) < 2:
        obj = _json_dict(text)
        if obj is not None:
            for k, names in _PAIR_JSON_KEYS.items():
                for name in names:
                    if name in obj:
                        scores[k] = _as_number(obj[name], name, text)
                        break
    missing = [f"Response {k}" for k in (1, 2) if k not in scores]
    if missing:
        raise ParseError(f"no score for {' and '.join(missing)} in {_preview(text)}")
    return (_in_range(scores[1], lo, hi, "Response 1 score", text),
            _in_range(scores[2], lo, hi, "Response 2 score", text))


_BRACKETS = re.compile(r"\[\[\s*" + _NUM + r"\s*\]\]")
_SCORE_LABEL = re.compile(r"\bScore\b[*\s]*[:=]?[*\s]*[\[<(]?\s*" + _NUM, re.IGNORECASE)
# A first line that is only a number, optionally "/10", bracketed, bold or followed by a full stop.
_LONE_NUMBER = re.compile(r"^[*\s\[(]*" + _NUM + r"\s*(?:/\s*\d+(?:\.\d+)?)?[\])*\s.]*$")


def parse_score(text: str, lo: float, hi: float) -> float:
    """One score, range-checked. Tried in order, the first format found decides:
    "[[8]]", JSON {"score": ..}, "Score: 7", a first (non-empty) line that is just a number ("8.5", "4.5/5")."""
    m = _BRACKETS.search(text)
    if m:
        return _in_range(float(m.group(1)), lo, hi, "score", text)
    obj = _json_dict(text)
    if obj is not None and "score" in obj:
        return _in_range(_as_number(obj["score"], "score", text), lo, hi, "score", text)
    m = _SCORE_LABEL.search(text)
    if m:
        return _in_range(float(m.group(1)), lo, hi, "score", text)
    first = next((line for line in text.splitlines() if line.strip()), "")
    m = _LONE_NUMBER.match(first)
    if m:
        return _in_range(float(m.group(1)), lo, hi, "score", text)
    raise ParseError(f"no score found in {_preview(text)}")


def parse_two_scores_line(text: str, lo: float = 1, hi: float = 10) -> tuple[float, float]:
    """The AlpaGasus / Vicuna pairwise judge format: the first non-empty line holds exactly two numbers,
    "8 7" or "8, 7" (commas become spaces, as in the original evaluation script)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    tokens = first.replace(",", " ").replace("*", " ").split()
    if len(tokens) != 2:
        raise ParseError(f"first line must hold exactly two scores, got {_preview(first)}")
    a, b = (_as_number(t, "score", text) for t in tokens)
    return _in_range(a, lo, hi, "score 1", text), _in_range(b, lo, hi, "score 2", text)


def parse_rating_brackets(text: str, lo: float | None = None, hi: float | None = None) -> float:
    """FastChat single-answer rating "[[8]]" / "[[8.5]]" (also "Rating: [[8]]"); the first one wins."""
    m = _BRACKETS.search(text)
    if not m:
        raise ParseError(f"no [[rating]] found in {_preview(text)}")
    return _in_range(float(m.group(1)), lo, hi, "rating", text)
