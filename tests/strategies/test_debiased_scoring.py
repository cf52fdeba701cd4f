"""The LLM pairwise judge's read-out and the contrastive scorer on it: the answer token is forced and read over the
answer tokens only, a missing token is invalid (never a floor value), a pure position offset cancels exactly, soft
outcomes feed Bradley-Terry, the single judge's expected digit, records never judged get no score, and the seed
reaches every LLM call."""
from __future__ import annotations

import hashlib
import math
import re

import pytest
from stub_server import Scripted, StubServer, last_user_message

from tacos.judges.base import JudgeContext
from tacos.judges.llm_pair import LLMPairJudge
from tacos.judges.llm_rating import LLMRatingJudge
from tacos.judges.orders import debias
from tacos.judges.parsers import JsonScore
from tacos.judges.readout import (AutoReadout, LogprobReadout, TextReadout, expected_value, first_token_logprobs,
                                  preference_logit, read_answer)
from tacos.llm.calling.providers import OpenAICompatible
from tacos.llm.calling.session import LLMSession
from tacos.method.bradley_terry import bradley_terry
from tacos.records import Record
from tacos.strategies.contrastive import ContrastiveScorer
from tacos.strategies.scorers import SingleScorer

OFFSET = 3.0  # the judge's pull towards the first position, in log-odds: it "prefers" the first almost always


def quality(text: str) -> float:
    """The latent quality of a response the scripted judge perceives (deterministic, in [-1, 1])."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF * 2 - 1


def _between(text: str, start: str, end: str) -> str:
    m = re.search(re.escape(start) + r"\s*(.*?)\s*" + re.escape(end), text, re.S)
    return m.group(1) if m else ""


def position_biased_judge(body: dict) -> str:
    """log P("1") - log P("2") = q(first) - q(second) + OFFSET: a pure position offset on top of a true preference.
    The probabilities of the other tokens ("The", "Response") take a fixed share, as a real model's do."""
    user = last_user_message(body)
    if "Answer with a single digit: 1" in user:
        q1 = quality(_between(user, "[Response 1]", "[Instruction 2]"))
        q2 = quality(_between(user, "[Response 2]", "Answer with"))
        logit = q1 - q2 + OFFSET
        p1 = 0.6 / (1 + math.exp(-logit))
        return Scripted("1" if logit > 0 else "2", {"1": math.log(p1), "2": math.log(0.6 - p1),
                                                    "The": math.log(0.3), "Response": math.log(0.1)})
    if "Answer with a single digit from" in user:  # single judge: a scripted distribution over 1..6
        return Scripted("3", {"1": math.log(0.1), "2": math.log(0.2), "3": math.log(0.4), "6": math.log(0.3)})
    return "?"


@pytest.fixture
def session(tmp_path):
    with StubServer(responder=position_biased_judge) as stub:
        provider = OpenAICompatible(base_url=stub.base_url, model="scripted", supports_logprobs=True)
        s = LLMSession(provider, tmp_path / "cache", {"backoff_base": 0.01, "progress": False}, None)
        yield s, stub
        s.close()


def _ctx(llm, seed: int = 0) -> JudgeContext:
    return JudgeContext(llm=llm, cache=llm.cache if llm is not None else None, seed=seed, progress=False)


def _records(n: int) -> dict[str, Record]:
    rs = [Record.make(i, f"Instruction {i}", "", f"Response number {i} with some text {i * 7}") for i in range(n)]
    return {r.id: r for r in rs}


def test_debias_cancels_a_pure_offset_exactly():
    for s_true in (-2.0, -0.3, 0.0, 0.7, 5.0):
        for d in (-4.0, 0.0, 3.0):
            p, offset = debias(s_true + d, -s_true + d)
            assert p == pytest.approx(1 / (1 + math.exp(-s_true)), abs=1e-12) and offset == pytest.approx(d)


def _lp(top: dict[str, float]) -> list:
    first = next(iter(top))
    return [{"token": first, "logprob": top[first],
             "top_logprobs": [{"token": t, "logprob": v} for t, v in top.items()]}]


def test_the_read_out_uses_the_answer_tokens_only_and_reports_their_mass():
    r = read_answer(_lp({"1": math.log(0.3), " 2": math.log(0.1), "2": math.log(0.1), "The": math.log(0.5)}),
                    ("1", "2"))
    assert r.valid and r.mass == pytest.approx(0.5) and r.probs["1"] == pytest.approx(0.6)
    assert preference_logit(r) == pytest.approx(math.log(0.3 / 0.2))  # " 2" and "2" are one answer


def test_a_missing_answer_token_is_invalid_not_a_floor_value():
    r = read_answer(_lp({"1": math.log(0.9), "The": math.log(0.05)}), ("1", "2"))
    assert not r.valid and preference_logit(r) is None and "['2']" in r.reason and r.mass == pytest.approx(0.9)
    assert not read_answer(None, ("1", "2")).valid
    # A scale needs at least one digit; the expected value renormalises over the digits found.
    digits = {str(k): float(k) for k in range(1, 7)}
    top = {"1": math.log(0.1), "2": math.log(0.2), "3": math.log(0.4), "6": math.log(0.2), "x": math.log(0.1)}
    assert expected_value(read_answer(_lp(top), tuple(digits), require_all=False), digits) == \
        pytest.approx((0.1 + 0.4 + 1.2 + 1.2) / 0.9)
    assert expected_value(read_answer(_lp({"x": 0.0}), tuple(digits), require_all=False), digits) is None


def test_first_token_logprobs_merges_space_variants():
    top = first_token_logprobs(_lp({"1": math.log(0.2), " 1": math.log(0.2)}))
    assert top["1"] == pytest.approx(math.log(0.4))


def test_the_answer_is_forced_by_a_grammar_where_the_endpoint_takes_one():
    from tacos.llm.calling.wire import request_body

    judge = LLMPairJudge(readout=LogprobReadout())
    a, b = list(_records(2).values())
    req = judge.request(a, b, judge.readout, seed=0)
    assert req.choices == ("1", "2") and req.max_tokens == 1 and req.logprobs == 10
    body = request_body(req, 0, "m", "json_schema", True, {}, grammar=True)
    assert body["extra_body"]["grammar"] == 'root ::= "1" | "2"'
    assert "extra_body" not in request_body(req, 0, "m", "json_schema", True, {}, grammar=False)
    prefill = LogprobReadout(prefill="Better response:")
    prefilled = LLMPairJudge(readout=prefill).request(a, b, prefill, 0)
    assert prefilled.messages[-1] == ("assistant", "Better response:")
    # The forced answer is part of the cache key; a request without it keeps the key it always had.
    free = LogprobReadout(force_answer=False)
    assert req.key("x") != LLMPairJudge(readout=free).request(a, b, free, 0).key("x")


def test_scripted_position_offset_is_cancelled_end_to_end(session):
    llm, stub = session
    records = _records(12)
    clusters = {0: sorted(records)[:6], 1: sorted(records)[6:]}
    scorer = ContrastiveScorer(judge=LLMPairJudge(readout=LogprobReadout()), rounds=3, n_boot=20)
    out = scorer.score(records, clusters, _ctx(llm))
    # The raw per-order decisions follow position (the offset wins every time) ...
    assert out.stats["raw_first_position_win_rate"] == pytest.approx(1.0) and out.stats["raw_consistency"] == 0.0
    assert "first_position_win_rate" not in out.stats  # the gate's observed checks are for text verdicts
    assert out.stats["mean_position_offset"] == pytest.approx(OFFSET, abs=1e-3)
    assert out.stats["mean_answer_mass"] == pytest.approx(0.6, abs=1e-4)
    # ... and the debiased outcome of every pair is exactly the judge's preference.
    pairs = {}
    for row in out.judgments:
        pairs.setdefault(frozenset((row["first"], row["second"])), []).append(row)
    for rows in pairs.values():
        ab = next(r for r in rows if r["first"] < r["second"])
        ba = next(r for r in rows if r["first"] > r["second"])
        a, b = records[ab["first"]], records[ab["second"]]
        assert debias(ab["logit"], ba["logit"])[0] == pytest.approx(
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


def test_a_pair_whose_answer_token_is_missing_is_invalid(tmp_path):
    def one_sided(body: dict) -> str:
        return Scripted("1", {"1": math.log(0.8), "The": math.log(0.1)})  # "2" never listed

    with StubServer(responder=one_sided) as stub:
        llm = LLMSession(OpenAICompatible(base_url=stub.base_url, model="s", supports_logprobs=True),
                         tmp_path / "cache", {"backoff_base": 0.01, "progress": False}, None)
        records = _records(4)
        out = ContrastiveScorer(judge=LLMPairJudge(readout=LogprobReadout()), n_boot=10).score(
            records, {0: sorted(records)}, _ctx(llm))
        llm.close()
    assert all(r["score"] is None for r in out.rows) and out.counts["invalid"] == out.counts["pairs"] == 2
    assert all("not among the" in row["problem"] for row in out.judgments)


def test_soft_outcomes_in_bradley_terry_follow_the_probabilities():
    ids = ["a", "b", "c"]
    strengths = bradley_terry(ids, [("a", "b", 0.8), ("b", "c", 0.8), ("a", "c", 0.9)] * 5, prior=0.1)
    assert strengths["a"] > strengths["b"] > strengths["c"]


def test_single_scorer_expected_score_from_digit_logprobs(session):
    llm, _ = session
    records = _records(3)
    out = SingleScorer(judge=LLMRatingJudge(readout=LogprobReadout())).score(records, {0: sorted(records)}, _ctx(llm))
    assert [r["score"] for r in out.rows] == [pytest.approx((0.1 + 0.4 + 1.2 + 1.8) / 1.0)] * 3


def test_records_never_judged_get_no_score(tmp_path):
    with StubServer(responder=lambda body: "no answer here") as stub:
        provider = OpenAICompatible(base_url=stub.base_url, model="mute", supports_logprobs=False)
        llm = LLMSession(provider, tmp_path / "cache", {"backoff_base": 0.01, "progress": False,
                                                        "parse_retries": 0}, None)
        records = _records(4)
        out = ContrastiveScorer(judge=LLMPairJudge(readout=TextReadout()), n_boot=10).score(
            records, {0: sorted(records)}, _ctx(llm))
        llm.close()
    assert all(r["score"] is None and r["ci_low"] is None and r["n_judgments"] == 0 for r in out.rows)
    assert out.counts["unscored"] == 4


def test_the_selection_says_why_a_record_has_no_score():
    from tacos.stages.select import why_unscored

    rows = [{"id": "alone", "cluster": 0, "score": None}, {"id": "a", "cluster": 1, "score": None},
            {"id": "b", "cluster": 1, "score": 0.3}, {"id": "alone", "cluster": 2, "score": None},
            {"id": "off", "cluster": 1, "score": None, "screened": "the response does not address its instruction"}]
    assert why_unscored("alone", rows).startswith("alone in its cluster")
    assert why_unscored("a", rows) == "no valid judgment"
    assert why_unscored("off", rows).startswith("screened: the response does not address")


def test_a_record_scored_in_one_of_its_clusters_is_not_listed_as_unscored():
    from tacos.stages.select import unscored_ids

    rows = [{"id": "a", "cluster": 0, "score": None}, {"id": "a", "cluster": 1, "score": 0.2},
            {"id": "b", "cluster": 1, "score": None}, {"id": "c", "cluster": 1, "score": None}]
    assert unscored_ids(rows, {"c"}) == ["b"]


def test_auto_falls_back_to_text_without_logprobs():
    judge = LLMPairJudge(readout=AutoReadout(top_logprobs=5, prefill="Better:"))
    with_logprobs = JudgeContext(llm=type("L", (), {"supports_logprobs": True})())
    assert judge.readout.resolve(with_logprobs) == LogprobReadout(top_logprobs=5, prefill="Better:")
    assert judge.readout.resolve(JudgeContext(llm=None)) == TextReadout()
    # The identity names the read-out that judges and its settings (what the gate's key is made of).
    assert judge.identity(with_logprobs)["mode"] == "logprob" and judge.identity(with_logprobs)["prefill"] == "Better:"
    assert judge.identity(JudgeContext(llm=None))["mode"] == "text"
    with pytest.raises(ValueError, match="read-out object"):
        LLMPairJudge(readout="sometimes").validate()
    with pytest.raises(ValueError, match="one character"):  # a 0-100 scale cannot be read as one digit token
        LLMRatingJudge(readout=LogprobReadout(), text_parser=JsonScore(0, 100)).validate()


def test_the_seed_reaches_every_scoring_request():
    records = _records(4)
    clusters = {0: sorted(records)}
    for readout in (TextReadout(), LogprobReadout()):
        scorer = ContrastiveScorer(judge=LLMPairJudge(readout=readout))
        assert {r.seed for r in scorer.requests(records, clusters, JudgeContext(seed=7))} == {7}
    assert {r.seed for r in SingleScorer(judge=LLMRatingJudge(readout=TextReadout())).requests(
        records, clusters, JudgeContext(seed=5))} == {5}
