"""The refiner of stage `refine` (tacos/refiners.py): requests, parsing, the order of the rewrites, clear errors."""
from __future__ import annotations

import json
import types

import pytest

from tacos.llm.calling.parsing import ParseError
from tacos.refiners import INSTRUCTION, RESPONSE, LLMRefiner, answer_parser

ROWS = [{"id": "a", "instruction": "Add 2 and 3.", "input": "", "output": "5"},
        {"id": "b", "instruction": "Name a colour.", "input": "", "output": "Blue"}]


class FakeSession:
    """Answers every request with the rewrite of the text it shows, except rows listed in `refuse` (invalid)."""

    def __init__(self, refuse=()):
        self.refuse, self.calls = set(refuse), []

    def run(self, requests, parse, desc=""):
        self.calls.append((desc, requests))
        out = []
        for req in requests:
            user = req.messages[1][1]
            key = next(iter(req.schema["properties"]))
            if req.label in self.refuse:
                out.append(types.SimpleNamespace(status="invalid", parsed=None))
            else:
                out.append(types.SimpleNamespace(status="ok", parsed=parse(json.dumps({key: f"new {len(user)}"}))))
        return out


def test_requests_carry_the_settings_and_a_schema():
    refiner = LLMRefiner(temperature=0.3, top_p=0.9, max_tokens=64)
    reqs = refiner.requests(ROWS, RESPONSE, seed=7)
    assert [r.label for r in reqs] == ["a", "b"]
    r = reqs[0]
    assert (r.temperature, r.top_p, r.max_tokens, r.seed) == (0.3, 0.9, 64, 7)
    assert r.schema["required"] == ["better_response"] and r.messages[0][0] == "system"
    assert "Add 2 and 3." in r.messages[1][1] and "5" in r.messages[1][1]
    assert refiner.fields() == [RESPONSE] and LLMRefiner(rewrite_instruction=True).fields() == [RESPONSE, INSTRUCTION]
    assert len(LLMRefiner(rewrite_instruction=True).forecast_requests(ROWS, 0)) == 4
    assert set(refiner.identity()) == {"prompt_hash"}


def test_refine_rewrites_response_then_instruction_and_keeps_invalid_originals():
    rows = [dict(r) for r in ROWS]
    session = FakeSession(refuse={"b"})
    invalid = LLMRefiner(rewrite_instruction=True).refine(rows, session, seed=0)
    assert invalid == {"output": 1, "instruction": 1}
    assert rows[0]["output"].startswith("new ") and rows[1] == ROWS[1]  # the invalid row keeps its text
    assert [desc for desc, _ in session.calls] == ["refine (output)", "refine (instruction)"]
    # the instruction prompt shows the rewritten response
    assert rows[0]["output"] in session.calls[1][1][0].messages[1][1]


def test_answer_parser_refuses_empty_rewrites():
    parse = answer_parser("better_response")
    assert parse('{"better_response": "  fine  "}') == "fine"
    for raw in ('{"better_response": "  "}', '{"other": "x"}', "no json"):
        with pytest.raises(ParseError):
            parse(raw)


@pytest.mark.parametrize("kwargs,key", [({"temperature": -0.1}, "refine.temperature"),
                                        ({"top_p": 0}, "refine.top_p"), ({"max_tokens": 0}, "refine.max_tokens"),
                                        ({"rewrite_instruction": "yes"}, "refine.rewrite_instruction")])
def test_clear_errors(kwargs, key):
    with pytest.raises(ValueError, match=rf"^{key} must"):
        LLMRefiner(**kwargs).validate()
