"""Read-out objects and per-order records: a judge asks its read-out (never a mode string) how to ask and read; each
presentation order is an OrderResult carrying its verdict, which the benchmarks and the scorer read as is."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from _protocol_check import implements

from tacos.benchmarks.pairwise import Match, _rows
from tacos.judges.base import JudgeContext, OrderResult
from tacos.judges.llm_pair import LLMPairJudge
from tacos.judges.llm_rating import LLMRatingJudge
from tacos.judges.readout import (AutoReadout, LogprobReadout, Readout, ResolvedReadout, TextReadout)
from tacos.strategies.contrastive import judgment_rows_of

CONF = Path(__file__).resolve().parents[2] / "conf"
WITH_LOGPROBS = JudgeContext(llm=SimpleNamespace(supports_logprobs=True))


def _res(parsed=None, logprobs=None, status="ok", key="k"):
    return SimpleNamespace(status=status, parsed=parsed, logprobs=logprobs, raw=str(parsed), cached=False, key=key,
                           error="")


def _lp(top: dict[str, float]) -> list:
    first, *_ = top
    return [{"token": first, "logprob": top[first], "top_logprobs": [{"token": t, "logprob": v} for t, v in
                                                                     top.items()]}]


@pytest.mark.parametrize("name", ["text", "logprob", "auto"])
def test_every_readout_config_builds_a_readout(name):
    from hydra.utils import instantiate

    cfg = yaml.safe_load((CONF / "readout" / f"{name}.yaml").read_text())
    obj = instantiate(cfg)
    assert implements(type(obj), Readout) == []
    assert implements(type(obj.resolve(WITH_LOGPROBS)), ResolvedReadout) == []
    assert implements(type(obj.resolve(JudgeContext())), ResolvedReadout) == []


def test_a_readout_is_switched_by_its_config_group():
    from tacos.evaluate_judge import compose, judge_at

    judge = judge_at(compose(["scorer/judge=llm_text", "readout@scorer.judge.readout=logprob"]), "scorer.judge")
    assert judge.readout == LogprobReadout()
    assert judge_at(compose(["scorer=alpagasus"]), "scorer.judge").readout == TextReadout()  # overrides its parent's
    inner = judge_at(compose(["scorer/judge=guarded_llm"]), "scorer.judge").judge
    assert inner.readout == AutoReadout()


def test_the_identity_names_the_readout_and_keeps_the_committed_key():
    judge = LLMPairJudge(readout=AutoReadout())
    # what the committed measurements of llm_logprob were filed under (measurements/results/...measurements.jsonl)
    assert set(judge.identity(WITH_LOGPROBS)) == {"judge", "mode", "prompt_hash", "force_answer", "prefill"}
    assert judge.identity(WITH_LOGPROBS)["mode"] == "logprob" and judge.identity(JudgeContext())["mode"] == "text"
    assert LLMRatingJudge(readout=LogprobReadout(force_answer=False)).identity(None)["force_answer"] is False


def test_an_order_result_gives_its_verdict_from_either_side():
    o = OrderResult("a", "b", "text", "win", "ok", "7 6", False, "k", score_first=7, score_second=6)
    assert (o.verdict("a"), o.verdict("b"), o.first_won) == ("win", "lose", True)
    assert list(o.row()) == ["first", "second", "score_first", "score_second", "status", "cached", "cache_key"]
    assert OrderResult("a", "b", "logprob", None, "ok").first_won is None
    with pytest.raises(ValueError, match="neither record"):
        o.verdict("c")


def test_the_benchmark_reads_the_verdict_the_judge_gave_each_order():
    """A tie margin decides an order's verdict: the pairwise benchmark's per-order verdicts now come from the judge
    (they were re-derived with no margin, so an order could say "win" inside a combined "tie")."""
    judge = LLMPairJudge(readout=TextReadout(), tie_margin=1.0)
    v = judge.readout.pair_verdict(judge, "q/ours", "q/base", _res((7, 6)), _res((6, 6)))
    assert v.order_verdicts() == ["tie", "tie"] and v.p_first == 0.5
    calls, rows, _ = _rows([Match("vicuna", "base", "1", "Q?", "x", "y")], [v])
    assert [c["verdict"] for c in calls] == ["tie", "tie"] and rows[0]["combined"] == "tie"
    assert rows[0]["ours_first"] == rows[0]["baseline_first"] == "tie"


def test_logprob_orders_carry_their_logit_and_verdict():
    judge = LLMPairJudge(readout=LogprobReadout())
    ab = _res(logprobs=_lp({"1": math.log(0.7), "2": math.log(0.2)}))
    ba = _res(logprobs=_lp({"1": math.log(0.6), "2": math.log(0.3)}))
    v = judge.readout.pair_verdict(judge, "a", "b", ab, ba)
    assert [o.verdict("a") for o in v.orders] == ["win", "lose"]  # each order: the first-presented one wins
    assert v.orders[0].logit == pytest.approx(math.log(0.7 / 0.2), abs=1e-6)
    assert v.p_first == pytest.approx(1 / (1 + math.exp(-(math.log(3.5) - math.log(2)) / 2)))
    rows = judgment_rows_of(0, "a", "b", v)
    assert [r["first"] for r in rows] == ["a", "b"] and "answer_mass" in rows[0] and "score_first" not in rows[0]
    flipped = v.flipped()
    assert flipped.order_verdicts() == ["win", "lose"] and flipped.orders[0].first == "b"
