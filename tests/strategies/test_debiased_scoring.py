"""Position-debiased scoring: offset cancellation recovers the judge's preference exactly, soft outcomes feed the
Bradley-Terry fit, the single scorer's expected score, records never judged get no score, and the seed reaches
every LLM call."""
from __future__ import annotations

import hashlib
import math
import re

import pytest
from stub_server import Scripted, StubServer, last_user_message

from tacos.llm.session import LLMSession
from tacos.llm.providers import OpenAICompatible
from tacos.method.bradley_terry import bradley_terry
from tacos.method.scoring import debias, expected_score, first_token_logprobs, preference_logit
from tacos.records import Record
from tacos.strategies.pairwise import ContrastiveScorer
from tacos.strategies.scorers import SingleScorer

OFFSET = 3.0  # the judge's pull towards the first position, in log-odds: it "prefers" the first almost always


def quality(text: str) -> float:
    """The latent quality of a response the scripted judge perceives (deterministic, in [-1, 1])."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF * 2 - 1


def _between(text: str, start: str, end: str) -> str:
    m = re.search(re.escape(start) + r"\s*(.*?)\s*" + re.escape(end), text, re.S)
    return m.group(1) if m else ""


def position_biased_judge(body: dict) -> str:
    """log P("1") - log P("2") = q(first) - q(second) + OFFSET: a pure position offset on top of a true preference."""
    user = last_user_message(body)
    if "Answer with a single digit: 1" in user:
        q1 = quality(_between(user, "[Response 1]", "[Instruction 2]"))
        q2 = quality(_between(user, "[Response 2]", "Answer with"))
        logit = q1 - q2 + OFFSET
        return Scripted("1" if logit > 0 else "2", {"1": -math.log1p(math.exp(-logit)),
                                                    "2": -math.log1p(math.exp(logit))})
    if "Answer with a single digit from" in user:  # single scorer: a scripted distribution over 1..6
        return Scripted("3", {"1": math.log(0.1), "2": math.log(0.2), "3": math.log(0.4), "6": math.log(0.3)})
    return "?"


@pytest.fixture
def session(tmp_path):
    with StubServer(responder=position_biased_judge) as stub:
        provider = OpenAICompatible(base_url=stub.base_url, model="scripted", supports_logprobs=True)
        s = LLMSession(provider, tmp_path / "cache", {"backoff_base": 0.01, "progress": False}, None)
        yield s, stub
        s.close()


def _records(n: int) -> dict[str, Record]:
    rs = [Record.make(i, f"Instruction {i}", "", f"Response number {i} with some text {i * 7}") for i in range(n)]
    return {r.id: r for r in rs}


def test_debias_cancels_a_pure_offset_exactly():
    for s_true in (-2.0, -0.3, 0.0, 0.7, 5.0):
        for d in (-4.0, 0.0, 3.0):
            p, offset = debias(s_true + d, -s_true + d)
            assert p == pytest.approx(1 / (1 + math.exp(-s_true)), abs=1e-12) and offset == pytest.approx(d)


def test_preference_logit_reads_the_two_answer_tokens():
    lp = first_token_logprobs([{"token": "1", "logprob": -0.1, "top_logprobs": [
        {"token": "1", "logprob": -0.1}, {"token": " 2", "logprob": -2.5}, {"token": "2", "logprob": -3.0}]}])
    assert preference_logit(lp) == pytest.approx(-0.1 - math.log(math.exp(-2.5) + math.exp(-3.0)))
    assert preference_logit({"x": -1.0}) is None
    assert preference_logit({"1": -0.5}) == pytest.approx(-0.5 + 30.0)  # the absent token sits far below


def test_expected_score_over_the_scale_tokens():
    digits = {str(k): float(k) for k in range(1, 7)}
    top = {"1": math.log(0.1), "2": math.log(0.2), "3": math.log(0.4), "6": math.log(0.2), "x": math.log(0.1)}
    assert expected_score(top, digits) == pytest.approx((0.1 + 0.4 + 1.2 + 1.2) / 0.9)
    assert expected_score({"x": 0.0}, digits) is None


def test_scripted_position_offset_is_cancelled_end_to_end(session):
    llm, stub = session
    records = _records(12)
    clusters = {0: sorted(records)[:6], 1: sorted(records)[6:]}
    scorer = ContrastiveScorer(judgment="logprob", rounds=3, n_boot=20)
    out = scorer.score(records, clusters, llm, seed=0)
    assert out.stats["judgment"] == "logprob"
    # The raw per-order decisions follow position (the offset wins every time) ...
    assert out.stats["first_position_win_rate"] == pytest.approx(1.0) and out.stats["consistency"] == 0.0
    assert out.stats["mean_position_offset"] == pytest.approx(OFFSET, abs=1e-4)
    # ... and the debiased outcome of every pair is exactly the judge's preference.
    for row in out.judgments:
        a, b = records[row["first"]], records[row["second"]]
        assert row["p_first_better_debiased"] == pytest.approx(
            1 / (1 + math.exp(-(quality(a.output) - quality(b.output)))), abs=1e-5)
    # Bradley-Terry on those soft outcomes orders each cluster like the latent quality of the pairs it saw.
    for c, members in clusters.items():
        rows = {r["id"]: r for r in out.rows if r["cluster"] == c}
        assert all(rows[i]["score"] is not None and rows[i]["n_judgments"] >= 3 for i in members)
        best = max(members, key=lambda i: rows[i]["score"])
        worst = min(members, key=lambda i: rows[i]["score"])
        assert quality(records[best].output) > quality(records[worst].output)
    assert all(body.get("max_tokens") == 1 and body.get("logprobs") for body in stub.requests)
    assert llm.stats.truncated == 0  # a one-token read-out stops at max_tokens by design: not a truncation


def test_soft_outcomes_in_bradley_terry_follow_the_probabilities():
    ids = ["a", "b", "c"]
    strengths = bradley_terry(ids, [("a", "b", 0.8), ("b", "c", 0.8), ("a", "c", 0.9)] * 5, prior=0.1)
    assert strengths["a"] > strengths["b"] > strengths["c"]


def test_single_scorer_expected_score_from_digit_logprobs(session):
    llm, _ = session
    records = _records(3)
    out = SingleScorer(judgment="logprob").score(records, {0: sorted(records)}, llm, seed=0)
    assert [r["score"] for r in out.rows] == [pytest.approx((0.1 + 0.4 + 1.2 + 1.8) / 1.0)] * 3


def test_records_never_judged_get_no_score(tmp_path):
    with StubServer(responder=lambda body: "no answer here") as stub:
        provider = OpenAICompatible(base_url=stub.base_url, model="mute", supports_logprobs=False)
        llm = LLMSession(provider, tmp_path / "cache", {"backoff_base": 0.01, "progress": False,
                                                        "parse_retries": 0}, None)
        records = _records(4)
        out = ContrastiveScorer(judgment="text", n_boot=10).score(records, {0: sorted(records)}, llm, seed=0)
        llm.close()
    assert all(r["score"] is None and r["ci_low"] is None and r["n_judgments"] == 0 for r in out.rows)
    assert out.counts["unscored"] == 4


def test_the_selection_says_why_a_record_has_no_score():
    from tacos.stages.select import why_unscored

    rows = [{"id": "alone", "cluster": 0, "score": None}, {"id": "a", "cluster": 1, "score": None},
            {"id": "b", "cluster": 1, "score": 0.3}, {"id": "alone", "cluster": 2, "score": None}]
    assert why_unscored("alone", rows).startswith("alone in its cluster")
    assert why_unscored("a", rows) == "no valid judgment"


def test_auto_falls_back_to_text_without_logprobs():
    scorer = ContrastiveScorer(judgment="auto")
    assert scorer.mode(True) == "logprob" and scorer.mode(False) == "text"
    with pytest.raises(ValueError, match="swap_order"):
        ContrastiveScorer(judgment="logprob", swap_order=False).validate()


def test_the_seed_reaches_every_scoring_request():
    records = list(_records(4).values())
    scorer = ContrastiveScorer()
    for mode in ("text", "logprob"):
        assert {r.seed for r in scorer.requests({r.id: r for r in records}, {0: [r.id for r in records]}, 7,
                                                 mode == "logprob")} == {7}
    assert {r.seed for r in SingleScorer().requests({r.id: r for r in records}, {0: [r.id for r in records]}, 5)} \
        == {5}
