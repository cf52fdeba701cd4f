"""The model check wrong_answer without a model: the rule that picks simple questions, the yes/no read-out, the
threshold, and that a row it cannot judge is kept with its reason (never removed silently). The clean stage with it,
against the stub server: LLM calls in the manifest, the dry-run forecast equal to them."""
from __future__ import annotations

import json
import math

import pytest
from conftest import run_cli, stub_overrides

from tacos.cleaning import Cleaner, CleanContext
from tacos.cleaning.model_checks import WrongAnswer, simple_question, yes_no_probability
from tacos.cleaning.rules import PlaceholderOutput
from tacos.llm.calling.types import LLMResult
from tacos.records import Record

SIMPLE = [("What is the capital of Australia?", "Sydney."), ("Who wrote Hamlet?", "William Shakespeare."),
          ("How many legs does a spider have?", "Eight."), ("Name the largest planet in the solar system.", "Jupiter"),
          ("On which continent is Kenya located?", "Africa"), ("In what year did the Berlin Wall fall?", "1989")]
NOT_SIMPLE = [("Explain why the sky is blue.", "", "Rayleigh scattering."),
              ("What are some tips for better sleep?", "", "Keep a schedule."),
              ("What is 8 + 2 x 3?", "", "14"),  # arithmetic: checked exactly by WrongArithmetic
              ("What is the main idea of the passage?", "The passage ...", "Trees."),  # material to read
              ("Write a poem about the sea.", "", "Waves."),
              ("What do you think about remote work?", "", "It is good."),
              ("Who was Napoleon?", "", " ".join(["word"] * 60))]  # a long answer: not a short fact


@pytest.mark.parametrize("q,a", SIMPLE)
def test_simple_closed_questions_are_selected(q, a):
    assert simple_question(q, "", a)


@pytest.mark.parametrize("q,x,a", NOT_SIMPLE)
def test_open_tasks_passages_arithmetic_and_long_answers_are_not(q, x, a):
    assert not simple_question(q, x, a)


def top(**p: float) -> list:
    return [{"token": next(iter(p)), "logprob": math.log(next(iter(p.values()))),
             "top_logprobs": [{"token": t, "logprob": math.log(v)} for t, v in p.items()]}]


def test_yes_no_readout_renormalises_ignores_case_and_refuses_a_missing_answer():
    p, mass, why = yes_no_probability(top(no=0.6, Yes=0.2, yes=0.1, maybe=0.1))
    assert p == pytest.approx(0.6 / 0.9) and mass == pytest.approx(0.9) and not why
    assert yes_no_probability(top(yes=0.9, maybe=0.1))[0] is None  # P(no) unknown: invalid, not 0
    assert yes_no_probability(None)[0] is None and "no log-probabilities" in yes_no_probability(None)[2]


class FakeSession:
    """Answers each request from `answers` (label suffix = record id -> LLMResult fields)."""

    def __init__(self, answers: dict[str, dict]):
        self.answers, self.asked = answers, []

    def run(self, requests, parser, desc):
        out = []
        for q in requests:
            rid = q.label.split(":", 1)[1]
            self.asked.append(rid)
            a = {"status": "ok", "raw": "no", "logprobs": None, **self.answers[rid]}
            out.append(LLMResult(key=rid, parsed=a["raw"], attempts=1, prompt_tokens=30, completion_tokens=1,
                                 cached=False, **a))
        return out


def rec(i, q, a) -> Record:
    return Record.make(i, q, "", a)


def test_wrong_answer_flags_at_the_threshold_and_keeps_what_it_cannot_judge():
    rows = [rec(0, "What is the capital of Australia?", "Sydney."),       # P(no) 0.9: removed
            rec(1, "Who wrote Hamlet?", "William Shakespeare."),          # P(no) 0.2: kept
            rec(2, "What is the capital of France?", "Paris."),           # no readable answer: kept, listed
            rec(3, "Which planet is the Red Planet?", "Mars."),           # the call failed: kept, listed
            rec(4, "Write a poem about the sea.", "Waves roll in.")]      # not a simple question: never asked
    session = FakeSession({rows[0].id: {"logprobs": top(no=0.9, yes=0.1)},
                           rows[1].id: {"logprobs": top(yes=0.8, no=0.2)},
                           rows[2].id: {"logprobs": top(maybe=0.9, perhaps=0.1)},
                           rows[3].id: {"status": "error", "raw": None, "error": "timeout"}})
    ctx = CleanContext(llm=session, seed=0)
    out = Cleaner([WrongAnswer(threshold=0.5)]).clean(rows, ctx)
    assert [r["index"] for r in out.removed] == [0] and "P(no) = 0.90" in out.removed[0]["checks"]["wrong_answer"]
    assert [r.index for r in out.kept] == [1, 2, 3, 4]
    assert {u["index"]: u["reason"] for u in out.unjudged}.keys() == {2, 3}
    assert "not among" in out.unjudged[0]["reason"] and "error" in out.unjudged[1]["reason"]
    assert rows[4].id not in session.asked and ctx.stats["llm_calls"] == 4
    assert [m["p_wrong"] for m in out.model_rows] == [0.9, 0.2, None]
    # a higher threshold keeps the 0.9 row too
    assert not Cleaner([WrongAnswer(threshold=0.95)]).clean(rows, CleanContext(llm=session)).removed


def test_model_checks_ask_only_rows_the_rules_kept_and_are_skipped_without_a_session():
    rows = [rec(0, "Who wrote Hamlet?", "N/A"), rec(1, "Who wrote Hamlet?", "Shakespeare.")]
    cleaner = Cleaner([PlaceholderOutput(), WrongAnswer()])
    assert [q.label for q in cleaner.requests(rows, 0)] == [f"wrong_answer:{rows[1].id}"]
    out = cleaner.clean(rows)  # no session (a dry run): the rule still removes, the model check says it was skipped
    assert [r["index"] for r in out.removed] == [0] and out.skipped == ["wrong_answer"]
    assert cleaner.uses_llm and "wrong_answer" in cleaner.identity()


def test_threshold_out_of_range_is_refused():
    with pytest.raises(ValueError, match="threshold"):
        Cleaner([WrongAnswer(threshold=0.0)]).validate()


def test_clean_stage_with_the_model_check_on_the_stub(stub, tmp_path):
    rows = [("What is the capital of Australia?", "Sydney."), ("Who wrote Hamlet?", "Shakespeare."),
            ("What is the capital of Peru?", "unreadable"), ("Write a haiku about rain.", "Rain on the roof."),
            ("Name three uses of copper.", "N/A")]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in rows))
    run_dir = tmp_path / "run"
    args = [*stub_overrides(stub, tmp_path, llm_judge=False), "llm.supports_logprobs=true", "dataset=jsonl",
            f"dataset.path={pool}", "clean=with_model_checks", "stages=[data,clean]", f"hydra.run.dir={run_dir}"]
    out = run_cli([*args, "dry_run=true"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((run_dir / "dry_run.json").read_text())["clean"]["calls"] == 3
    out = run_cli(args)
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads((run_dir / "clean" / "manifest.json").read_text())
    assert m["llm"]["calls"] == 3 and m["counts"]["by_check"]["wrong_answer"] == 1
    assert m["counts"]["removed"] == 2 and m["counts"]["model_unjudged"] == 1 and m["counts"]["model_asked"] == 3
    removed = [json.loads(line) for line in (run_dir / "clean" / "removed.jsonl").read_text().splitlines()]
    assert [r["instruction"] for r in removed] == [rows[0][0], rows[4][0]]
    unjudged = [json.loads(line) for line in (run_dir / "clean" / "unjudged.jsonl").read_text().splitlines()]
    assert [u["index"] for u in unjudged] == [2] and "not among" in unjudged[0]["reason"]
