"""`tacos judge-eval` on the stub: any judge object by its place in the config, both orders through its own prompt and
read-out, the alpaca_eval leaderboard columns (ties count half), pairs with two instructions, ratings, the
measurement filed under the judge's key and the suite's content hash, a cached re-run."""
from __future__ import annotations

import json
import math
import re

import pytest
from conftest import REPO
from stub_server import Scripted, StubServer, last_user_message

from tacos.cli import main as tacos_main
from tacos.judges.base import PairVerdict
from tacos.judges.combined import RatingPairJudge
from tacos.judges.gate import find
from tacos.judges.measure import PairJudgment, pair_metrics
from tacos.records import file_sha256

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
    """Prefers an on-topic response, with a strong pull towards the first position (log-odds +2); the judge stage's
    prompt gets "8 3"-style first lines."""
    user = last_user_message(body)
    if "[Assistant 1's answer]" in user:
        a1 = _between(user, "[Assistant 1's answer]", "[End of Assistant 1's answer]").lower()
        a2 = _between(user, "[Assistant 2's answer]", "[End of Assistant 2's answer]").lower()
        return f"{3 + 5 * any(w in a1 for w in GOOD)} {3 + 5 * any(w in a2 for w in GOOD)}\nbecause"
    if "[Instruction 1]" not in user:
        return "?"
    r1 = _between(user, "[Response 1]", "[Instruction 2]").lower()
    r2 = _between(user, "[Response 2]", "Answer with" if "Answer with" in user else "Respond with JSON").lower()
    good1, good2 = any(w in r1 for w in GOOD), any(w in r2 for w in GOOD)
    if "Answer with a single digit" in user:
        logit = 2.0 + 3.0 * (good1 - good2)
        p1 = 0.9 / (1 + math.exp(-logit))
        return Scripted("1" if logit > 0 else "2", {"1": math.log(p1), "2": math.log(0.9 - p1), "x": math.log(0.1)})
    return json.dumps({"score_1": 2 + 3 * good1, "score_2": 2 + 3 * good2})


@pytest.fixture
def pairs_file(tmp_path):
    f = tmp_path / "toy_test.jsonl"
    f.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    return f


def _stub_args(stub, tmp_path) -> list[str]:
    return ["llm=openai_compatible", f"llm.base_url={stub.base_url}", "llm.model=knowing", "llm.supports_logprobs=true",
            f"paths.output_dir={tmp_path / 'o'}", "logger=none", "gate.relevance_rung=false"]


@pytest.mark.parametrize("judge", ["llm_logprob", "llm_text"])
def test_judge_eval_measures_agreement_and_records_it(tmp_path, pairs_file, judge, capsys):
    with StubServer(responder=knowing_judge) as stub:
        out = tmp_path / "je"
        args = ["judge-eval", "--pairs", str(pairs_file), "--out", str(out), "--n-boot", "200",
                *_stub_args(stub, tmp_path), f"scorer/judge={judge}"]
        assert tacos_main(args) == 0
        first_calls = stub.count
        assert first_calls == 2 * len(PAIRS)  # both orders of every pair
        assert tacos_main(args) == 0 and stub.count == first_calls  # a re-run is served from the cache
    result = json.loads((out / "judge_eval.json").read_text())
    overall = result["metrics"]["overall"]
    for column in ("n", "agreement", "agreement_ci", "prefers_longer_rate", "tie_rate", "invalid_rate",
                   "baseline_longer", "baseline_first", "seconds_per_item", "llm_calls_per_item", "usd_per_1000"):
        assert column in overall, column
    assert set(result["metrics"]) == {"a", "b", "overall"} and overall["n"] == 4
    # Three decisive labels right, the tie label counts half: (1 + 1 + 1 + 0.5) / 4.
    assert overall["agreement"] == pytest.approx(0.875)
    assert overall["baseline_first"] == pytest.approx((1 + 0 + 1 + 0.5) / 4)
    assert overall["llm_calls_per_item"] == 2 and overall["seconds_per_item"] > 0
    # the ladder beside it (no toy_dev.jsonl: fitted on the measured file itself, and said so)
    assert "itself" in result["ladder"]["fitted_on"] and overall["best_rung"] in overall["ladder"]
    assert overall["agreement_all"] == pytest.approx(0.875) and overall["agreement_all_ci"][1] <= 1.0
    if judge == "llm_logprob":
        # the scripted pull towards the first position (+2 log-odds) is seen in the raw orders and cancelled
        assert overall["mean_answer_mass"] == pytest.approx(0.9, abs=1e-3)
        assert overall["mean_position_offset"] == pytest.approx(2.0, abs=1e-3)
    key = result["judge_key"]
    found = find([tmp_path / "o" / "judge_eval" / "measurements.jsonl"], key)
    assert found[("toy_test", file_sha256(pairs_file))]["agreement"] == pytest.approx(0.875)
    assert "toy_test" in capsys.readouterr().out


def test_judge_eval_measures_the_judge_stage_judge_by_its_config_path(tmp_path, pairs_file):
    with StubServer(responder=knowing_judge) as stub:
        args = ["judge-eval", "--pairs", str(pairs_file), "--judge", "scorer.judge", "--out", str(tmp_path / "je"),
                *_stub_args(stub, tmp_path), "scorer/judge=llm_text",
                "scorer.judge.prompt=judge_pairwise.txt", "scorer.judge.system_prompt=judge_pairwise_system.txt",
                "scorer.judge.text_parser._target_=tacos.judges.parsers.FirstLineScores",
                "scorer.judge.text_parser.hi=10", "scorer.judge.max_tokens=64"]
        assert tacos_main(args) == 0
        assert all("[Assistant 1's answer]" in last_user_message(b) for b in stub.requests)
    result = json.loads((tmp_path / "je" / "judge_eval.json").read_text())
    assert result["metrics"]["overall"]["agreement"] == pytest.approx(0.875)


def test_pairs_with_two_instructions_and_ratings(tmp_path):
    pairs = tmp_path / "cross.jsonl"
    pairs.write_text(json.dumps({"id": "c1", "instruction": "Name a fruit.", "output_1": "Paris.",
                                 "instruction_2": "Name a color.", "output_2": "Blue.", "preference": 2}) + "\n")
    ratings = tmp_path / "ratings.jsonl"
    ratings.write_text("".join(json.dumps({"id": f"r{k}", "instruction": "Name a fruit.", "output": o, "rating": r})
                               + "\n" for k, (o, r) in enumerate([("Apple.", 9), ("Paris.", 2), ("A pear.", 8)])))
    with StubServer(responder=lambda body: json.dumps({"score": 5 if any(
            w in _between(last_user_message(body), "[Response]", "Respond").lower() for w in GOOD) else 1})) as stub:
        base = _stub_args(stub, tmp_path)
        assert tacos_main(["judge-eval", "--pairs", str(pairs), "--out", str(tmp_path / "p"), *base,
                           "scorer=single", "readout@scorer.judge.readout=text"]) == 0
        # output_2 under its own instruction (the two ratings may be requested in either order)
        assert any("[Instruction]\nName a color.\n[Response]\nBlue." in last_user_message(b) for b in stub.requests)
        assert tacos_main(["judge-eval", "--ratings", str(ratings), "--out", str(tmp_path / "r"), *base,
                           "scorer=single", "readout@scorer.judge.readout=text"]) == 0
    assert json.loads((tmp_path / "p" / "judge_eval.json").read_text())["metrics"]["overall"]["agreement"] == 1.0
    rated = json.loads((tmp_path / "r" / "judge_eval.json").read_text())["metrics"]["overall"]
    assert rated["spearman"] == pytest.approx(0.866, abs=1e-3) and rated["n"] == 3


def test_pair_metrics_from_scratch():
    js = [PairJudgment("x", "s", 1.0, 1.0, 0.9, 1.0), PairJudgment("y", "s", 2.0, 1.0, 0.8, 2.0),
          PairJudgment("z", "s", 1.5, 1.5, 0.5, 1.0), PairJudgment("w", "s", 1.0, None, None, 1.0)]
    verdicts = [PairVerdict(j.id, j.id + "'", j.p_output_1) for j in js]
    m = pair_metrics(js, verdicts, RatingPairJudge(judge=None), n_boot=100)
    assert m["agreement"] == pytest.approx((1 + 0 + 1) / 3, abs=1e-3) and m["invalid_rate"] == 0.25
    assert m["agreement_all"] == pytest.approx((1 + 0 + 1 + 0.5) / 4)  # no verdict counts as a tie
    assert m["tie_rate"] == pytest.approx(1 / 3, abs=1e-3) and m["prefers_longer_rate"] == 0.5
    assert m["baseline_longer"] == pytest.approx((1 + 1 + 0.5 + 1) / 4, abs=1e-3)


def test_bundled_suites_load():
    from tacos.data.preference_pairs import load_preference_pairs

    for name in ("swapped_response", "mt_bench_pair", "refined_balanced", "cross_instruction"):
        for split in ("dev", "test"):
            pairs = load_preference_pairs(REPO / "data" / "judge_eval" / f"{name}_{split}.jsonl")
            assert pairs and all(p.preference in (1.0, 2.0) for p in pairs)
    balanced = load_preference_pairs(REPO / "data" / "judge_eval" / "refined_balanced_test.jsonl")
    longer = sum((len(p.output_1) > len(p.output_2)) == (p.preference == 1.0) for p in balanced)
    assert abs(longer / len(balanced) - 0.5) < 0.05  # always-longer is at chance by construction
