"""The tolerant parsers: every accepted format, range checks, and garbage (always ParseError, never a default)."""
from __future__ import annotations

import pytest

from tacos.llm.calling.parsing import (ParseError, extract_json, parse_rating_brackets, parse_score, parse_score_pair,
                               parse_two_scores_line)

GARBAGE = ["", "   ", "I cannot help with that.", "Score: high", "[Response 1] Score: <>", "{not json}",
           "```json\n{broken\n```"]


# ---- extract_json -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ('{"tags": ["a", "b"]}', {"tags": ["a", "b"]}),
    ('  [1, 2]\n', [1, 2]),
    ('```json\n{"tag": "x", "explanation": "y"}\n```', {"tag": "x", "explanation": "y"}),
    ('Here you go:\n```\n[{"tag": "x"}]\n```\nDone.', [{"tag": "x"}]),
    ('Sure! The answer is {"score": 7, "why": "a } inside a string"} as requested.',
     {"score": 7, "why": "a } inside a string"}),
    ('See [Response 1] first, then the list ["a", "b"].', ["a", "b"]),
    ('{\u201ctag\u201d: \u201cbaking\u201d}', {"tag": "baking"}),  # curly quotes
    ('{"quote": "the \u201cbest\u201d one"}', {"quote": "the \u201cbest\u201d one"}),  # kept inside valid JSON
    ('{"a": {"b": [1, {"c": 2}]}} trailing', {"a": {"b": [1, {"c": 2}]}}),
])
def test_extract_json(text, expected):
    assert extract_json(text) == expected


@pytest.mark.parametrize("text", ["", "no json here", "{'single': 'quotes'}", "{\"a\": 1", "[1, 2"])
def test_extract_json_garbage(text):
    with pytest.raises(ParseError, match="no JSON"):
        extract_json(text)


# ---- parse_score_pair ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("[Response 1] Score: 5\n[Response 2] Score: 3", (5.0, 3.0)),
    ("[Response 1] Score:5\n[Response 2] Score:6", (5.0, 6.0)),
    ("[Response 1] Score:<4>\n[Response 2] Score:<2>", (4.0, 2.0)),
    ("Scores and explanations for each dimension: ...;\n[Response 1]: [85]\n...\n[Response 2]: [72]", (85.0, 72.0)),
    ("Response 1: 7.5\nResponse 2: 6", (7.5, 6.0)),
    ("**[Response 1] Score:** 5\n**[Response 2] Score:** 4", (5.0, 4.0)),
    ('{"score_1": 90, "score_2": 40.5}', (90.0, 40.5)),
    ('```json\n{"score_1": "8", "score_2": 9}\n```', (8.0, 9.0)),
    ("[Response 2] Score: 1\n[Response 1] Score: 2", (2.0, 1.0)),
    ("[Response 1] Score: 3\nlater: [Response 1] Score: 9\n[Response 2] Score: 4", (3.0, 4.0)),  # first wins
])
def test_parse_score_pair(text, expected):
    assert parse_score_pair(text, 0, 100) == expected


def test_parse_score_pair_does_not_read_response_12_as_response_1():
    with pytest.raises(ParseError, match="Response 1"):
        parse_score_pair("[Response 12] Score: 5\n[Response 2] Score: 3", 0, 100)


@pytest.mark.parametrize("text", GARBAGE + [
    "[Response 1] Score: 5",  # Response 2 missing: never 0
    "[Response 1]: []\n[Response 2]: []",
    '{"score_1": 5}',
    '{"score_1": true, "score_2": 3}',
])
def test_parse_score_pair_garbage(text):
    with pytest.raises(ParseError):
        parse_score_pair(text, 0, 100)


def test_parse_score_pair_range():
    assert parse_score_pair("[Response 1] Score: 6\n[Response 2] Score: 1", 1, 6) == (6.0, 1.0)
    with pytest.raises(ParseError, match="outside"):
        parse_score_pair("[Response 1] Score: 7\n[Response 2] Score: 1", 1, 6)
    with pytest.raises(ParseError, match="outside"):
        parse_score_pair("[Response 1]: [85]\n[Response 2]: [-3]", 0, 100)


# ---- parse_score ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ('{"score": 7}', 7.0),
    ('Result:\n```json\n{"score": 4.5, "reason": "ok"}\n```', 4.5),
    ("Score: 7", 7.0),
    ("The overall score: 8.5 because ...", 8.5),
    ("Rating: [[8]]", 8.0),
    ("[[9.5]]", 9.5),
    ("8.5", 8.5),
    ("4.5\nThe AI assistant has correctly identified a noun phrase ...", 4.5),  # AlpaGasus single-score trials
    ("\n  5  \nexplanation", 5.0),
    ("7/10\nGood answer.", 7.0),
    ("**6**\nwhy", 6.0),
])
def test_parse_score(text, expected):
    assert parse_score(text, 0, 10) == expected


@pytest.mark.parametrize("text", GARBAGE + [
    "1. The answer is good\n2. It is short",  # a numbered list is not a score
    "The answer deserves 8 points",  # a number inside prose on the first line is not taken
    '{"score": "high"}',
])
def test_parse_score_garbage(text):
    with pytest.raises(ParseError):
        parse_score(text, 0, 10)


@pytest.mark.parametrize("text", ["Score: 11", "[[0]]", "-1", '{"score": 10.5}'])
def test_parse_score_out_of_range(text):
    with pytest.raises(ParseError, match="outside"):
        parse_score(text, 1, 10)


# ---- parse_two_scores_line ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("8 7\nAssistant 1 was more detailed.", (8.0, 7.0)),
    ("8, 7\nexplanation", (8.0, 7.0)),
    ("9.5,6\n", (9.5, 6.0)),
    ("\n 10   1 \nexplanation", (10.0, 1.0)),
    ("**8 6**\nwhy", (8.0, 6.0)),
])
def test_parse_two_scores_line(text, expected):
    assert parse_two_scores_line(text) == expected


@pytest.mark.parametrize("text", GARBAGE + ["8\nonly one", "8 7 6\nthree", "Assistant 1: 8 Assistant 2: 7",
                                            "8 seven"])
def test_parse_two_scores_line_garbage(text):
    with pytest.raises(ParseError):
        parse_two_scores_line(text)


def test_parse_two_scores_line_range():
    with pytest.raises(ParseError, match="outside"):
        parse_two_scores_line("11 7")
    assert parse_two_scores_line("0 100", lo=0, hi=100) == (0.0, 100.0)


# ---- parse_rating_brackets ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("[[8]]", 8.0),
    ("The answer is fine. Rating: [[8.5]]", 8.5),
    ("Rating: [[ 3 ]]\nthen [[9]]", 3.0),
])
def test_parse_rating_brackets(text, expected):
    assert parse_rating_brackets(text) == expected


@pytest.mark.parametrize("text", GARBAGE + ["Rating: [8]", "Rating: 8", "[[eight]]", "[[A]]"])
def test_parse_rating_brackets_garbage(text):
    with pytest.raises(ParseError):
        parse_rating_brackets(text)


def test_parse_rating_brackets_range():
    with pytest.raises(ParseError, match="outside"):
        parse_rating_brackets("Rating: [[11]]", lo=1, hi=10)
