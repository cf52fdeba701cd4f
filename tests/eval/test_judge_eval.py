"""`tacos judge-eval` on the stub judge: both orders through the score stage's (or the judge stage's) prompt, the
alpaca_eval leaderboard columns, ties counted half, the measurement the gate reads, a cached re-run; and the gate."""
from __future__ import annotations

import json
import math
import re

import pytest
from conftest import REPO
from stub_server import Scripted, StubServer, last_user_message

from tacos.cli import main as tacos_main
from tacos.eval.gate import GateConfig, find, judge_gate
from tacos.eval.judge_eval import PairJudgment, pair_metrics

PAIRS = [  # the right answer is the one about the instruction's topic; position and length vary
    {"id": "p1", "instruction": "Name a fruit.", "output_1": "Apple.", "output_2": "The capital of France is Paris.",
     "preference": 1, "subset": "a"},
    {"id": "p2", "instruction": "Name a color.", "output_1": "Seven plus two is nine, as everyone knows.",
     "output_2": "Blue.", "preference": 2, "subset": "a"},
    {"id": "p3", "instruction": "Name a fruit.", "output_1": "A pear.", "output_2": "Paris is in France.",
     "preference": 1, "subset": "b"},
    {"id": "p4", "instruction": "Say hi.", "output_1": "Hi.", "output_2": "Paris.", "preference": 1.5, "subset": "b"},
]
GOOD = ("apple", "blue", "pear", "hi", "hello")


def _between(text, start, end):
    m = re.search(re.escape(start) + r"\s*(.*?)\s*" + re.escape(end), text, re.S)
    return m.group(1) if m else ""


def knowing_judge(body: dict) -> str:
    """Prefers an on-topic response, with a strong pull towards the first position (log-odds +2)."""
    user = last_user_message(body)
    if "[Instruction 1]" not in user:
        return "?"
    r1 = _between(user, "[Response 1]", "[Instruction 2]").lower()
    r2 = _between(user, "[Response 2]", "Answer with" if "Answer with" in user else "Respond with JSON").lower()
    good1, good2 = any(w in r1 for w in GOOD), any(w in r2 for w in GOOD)
    if "Answer with a single digit" in user:
        logit = 2.0 + 3.0 * (good1 - good2)
        return Scripted("1" if logit > 0 else "2", {"1": -math.log1p(math.exp(-logit)),
                                                    "2": -math.log1p(math.exp(logit))})
    return json.dumps({"score_1": 2 + 3 * good1, "score_2": 2 + 3 * good2})


@pytest.fixture
def pairs_file(tmp_path):
    f = tmp_path / "toy_test.jsonl"
    f.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    return f


@pytest.mark.parametrize("judgment", ["logprob", "text"])
def test_judge_eval_measures_agreement_and_records_it(tmp_path, pairs_file, judgment, capsys):
    with StubServer(responder=knowing_judge) as stub:
        out = tmp_path / "je"
        args = ["judge-eval", "--pairs", str(pairs_file), "--out", str(out), "--n-boot", "200",
                "llm=openai_compatible", f"llm.base_url={stub.base_url}", "llm.model=knowing",
                "llm.supports_logprobs=true", f"scorer.judgment={judgment}", f"paths.output_dir={tmp_path / 'o'}",
                "logger=none"]
        assert tacos_main(args) == 0
        first_calls = stub.count
        assert first_calls == 2 * len(PAIRS)  # both orders of every pair
        assert tacos_main(args) == 0 and stub.count == first_calls  # a re-run is served from the cache
    result = json.loads((out / "judge_eval.json").read_text())
    overall = result["metrics"]["overall"]
    for column in ("n", "agreement", "agreement_ci", "consistency", "first_position_rate", "prefers_longer_rate",
                   "tie_rate", "invalid_rate", "calls", "seconds_per_1000", "usd_per_1000", "baseline_longer",
                   "baseline_first"):
        assert column in overall, column
    assert set(result["metrics"]) == {"a", "b", "overall"} and overall["n"] == 4
    # Three decisive labels right, the tie label counts half: (1 + 1 + 1 + 0.5) / 4.
    assert overall["agreement"] == pytest.approx(0.875)
    assert overall["baseline_first"] == pytest.approx((1 + 0 + 1 + 0.5) / 4)
    assert result["mode"] == judgment and overall["calls"] == 8 and overall["seconds_per_1000"] > 0
    entries = find([tmp_path / "o" / "judge_eval" / "measurements.jsonl"], result["judge"], result["prompt_hash"],
                   judgment)
    assert entries["toy_test"]["agreement"] == pytest.approx(0.875)
    assert "toy_test" in capsys.readouterr().out


def test_judge_eval_with_the_judge_stage_prompt(tmp_path, pairs_file):
    def judge_prompt_responder(body):
        user = last_user_message(body)
        a1 = _between(user, "[Assistant 1's answer]", "[End of Assistant 1's answer]").lower()
        a2 = _between(user, "[Assistant 2's answer]", "[End of Assistant 2's answer]").lower()
        return f"{3 + 5 * any(w in a1 for w in GOOD)} {3 + 5 * any(w in a2 for w in GOOD)}\nbecause"

    with StubServer(responder=judge_prompt_responder) as stub:
        args = ["judge-eval", "--pairs", str(pairs_file), "--prompt", "judge", "--out", str(tmp_path / "je"),
                "llm=openai_compatible", f"llm.base_url={stub.base_url}", "llm.model=j",
                f"paths.output_dir={tmp_path / 'o'}", "logger=none"]
        assert tacos_main(args) == 0
    result = json.loads((tmp_path / "je" / "judge_eval.json").read_text())
    assert result["source"] == "judge" and result["metrics"]["overall"]["agreement"] == pytest.approx(0.875)


def test_pair_metrics_from_scratch():
    js = [PairJudgment("x", "s", 1.0, 1.0, (True, False), 1.0), PairJudgment("y", "s", 2.0, 1.0, (True, True), 2.0),
          PairJudgment("z", "s", 1.5, 1.5, (None, None), 1.0), PairJudgment("w", "s", 1.0, None, (None, None), 1.0)]
    m = pair_metrics(js, n_boot=100)
    assert m["agreement"] == pytest.approx((1 + 0 + 1) / 3, abs=1e-3) and m["invalid_rate"] == 0.25
    assert m["consistency"] == 0.5 and m["first_position_rate"] == 0.75 and m["tie_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert m["prefers_longer_rate"] == 0.5 and m["baseline_longer"] == pytest.approx((1 + 1 + 0.5 + 1) / 4, abs=1e-3)


def test_gate():
    gate = GateConfig(required_suites=["s"])
    measured = {"s": {"agreement": 0.8, "agreement_ci": [0.6, 0.95], "n": 50}}
    ok = judge_gate({"consistency": 0.9, "first_position_win_rate": 0.55}, "text", measured, gate)
    assert ok["judge_informative"] and not ok["judge_gate_reasons"]
    biased = judge_gate({"consistency": 0.03, "first_position_win_rate": 0.98}, "text", measured, gate)
    assert not biased["judge_informative"] and len(biased["judge_gate_reasons"]) == 2
    assert "3%" in biased["judge_gate_reasons"][0] and "98%" in biased["judge_gate_reasons"][1]
    # log-probability judgments cancel the position pull: only the measurement counts
    assert judge_gate({"consistency": 0.0, "first_position_win_rate": 1.0}, "logprob", measured, gate)[
        "judge_informative"]
    chance = judge_gate({}, "logprob", {"s": {"agreement": 0.55, "agreement_ci": [0.4, 0.7], "n": 40}}, gate)
    assert not chance["judge_informative"] and "not above chance" in chance["judge_gate_reasons"][0]
    never = judge_gate({}, "logprob", {}, gate)
    assert not never["judge_informative"] and "never measured" in never["judge_gate_reasons"][0]


def test_bundled_suites_load():
    from tacos.data.preference_pairs import load_preference_pairs

    for name in ("swapped_response_test", "mt_bench_pair_test"):
        assert load_preference_pairs(REPO / "data" / "judge_eval" / f"{name}.jsonl")
