"""The judge stage: combination rule, statistics, parsing, FastChat fidelity (prompts, judgment file read by
FastChat's own show_result), the MT-Bench completeness guard, and both-order judging through run.py against a
stub judge with fake answer files: re-runs make no calls, a larger run makes only the new ones; the manifest carries
what the runner's gate needs (the pair judge's key and its observed position bias)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli, stub_overrides
from stub_server import StubServer

from tacos.benchmarks.mt_bench import MTBenchItem, fastchat_single_row, mt_bench_summary
from tacos.benchmarks.stats import bootstrap_score_ci, pairwise_summary
from tacos.judges.fastchat import parse_fastchat_rating as parse_mt_bench_rating
from tacos.judges.fastchat import prompt_name as mt_bench_prompt_name
from tacos.judges.fastchat import user_prompt as mt_bench_user_prompt
from tacos.judges.orders import combine, verdict
from tacos.judges.parsers import FirstLineScores
from tacos.llm.calling.parsing import ParseError
from tacos.prompts import render

parse_pairwise_scores = FirstLineScores(1, 10).parse  # the judge stage's pair judge reads its answers so

STAT_KEYS = {"win", "tie", "lose", "n", "score", "ci_low", "ci_high", "consistency", "invalid"}


# -- pure logic ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ours_first,baseline_first,expected", [
    ("win", "win", "win"), ("win", "tie", "win"), ("tie", "win", "win"),
    ("tie", "tie", "tie"), ("win", "lose", "tie"), ("lose", "win", "tie"),
    ("lose", "lose", "lose"), ("lose", "tie", "lose"), ("tie", "lose", "lose"),
    (None, "win", None), ("tie", None, None), (None, None, None),
])
def test_combination_rule(ours_first, baseline_first, expected):
    assert combine(ours_first, baseline_first) == expected


def test_verdict_and_bad_input():
    assert (verdict(8, 7), verdict(7, 7), verdict(6.5, 7)) == ("win", "tie", "lose")
    with pytest.raises(ValueError, match="verdicts must be"):
        combine("won", "tie")


def test_pairwise_summary():
    orders = [("win", "win"), ("win", "tie"), ("tie", "tie"), ("win", "lose"), ("lose", "lose"), (None, "win")]
    orders = [(a, b, combine(a, b)) for a, b in orders]
    s = pairwise_summary(orders, n_boot=500, seed=3)
    assert set(s) == STAT_KEYS
    assert (s["win"], s["tie"], s["lose"], s["n"], s["invalid"]) == (2, 2, 1, 5, 1)
    assert s["score"] == pytest.approx((2 - 1) / 5 + 1)
    assert s["consistency"] == pytest.approx(3 / 5)  # win/win, tie/tie, lose/lose agree
    assert s["ci_low"] <= s["score"] <= s["ci_high"] and 0 <= s["ci_low"] and s["ci_high"] <= 2
    assert pairwise_summary(orders, n_boot=500, seed=3) == s  # seeded
    empty = pairwise_summary([(None, None, None)])
    assert empty["n"] == 0 and empty["invalid"] == 1 and empty["score"] is None and empty["ci_low"] is None


def test_bootstrap_ci():
    assert bootstrap_score_ci([1.0] * 10, 200, 0) == (2.0, 2.0)  # all wins: no spread
    lo, hi = bootstrap_score_ci([1, 0, -1, 1, 1, 0, -1, 1], 1000, 0)
    assert lo < 1 + 2 / 8 < hi
    assert bootstrap_score_ci([], 10, 0) == (None, None)


@pytest.mark.parametrize("raw,pair,rating", [
    ("[[8]]", None, 8.0),
    ("Rating: [[8.5]]", None, 8.5),
    ("The answer is fine.\nRating: [[7]]", None, 7.0),
    ("8.5", None, None),  # one number: neither two scores nor a [[rating]]
    ("Score: 7", None, None),
    ("[5]\n\nThe answer is clear.", None, 5.0),  # FastChat's backup pattern "[x]"
    ("See [1] first. Rating: [[7]]", None, 7.0),  # "[[x]]" wins over an earlier "[x]"
    ("[Rating: 8]", None, None),
    ("8 7", (8.0, 7.0), None),
    ("8, 7\nAssistant 1 is more detailed.", (8.0, 7.0), None),
    ("\n 9 3.5 \nexplanation", (9.0, 3.5), None),
    ("11 7", None, None),  # outside 1-10
    ("[[11]]", None, None),
    ("Assistant 1: 8\nAssistant 2: 7", None, None),
    ("I cannot judge these answers.", None, None),
    ("", None, None),
])
def test_parsing_judge_outputs(raw, pair, rating):
    if pair is None:
        with pytest.raises(ParseError):
            parse_pairwise_scores(raw)
    else:
        assert parse_pairwise_scores(raw) == pair
    if rating is None:
        with pytest.raises(ParseError):
            parse_mt_bench_rating(raw)
    else:
        assert parse_mt_bench_rating(raw) == rating


@pytest.mark.parametrize("identity,name", [
    ("llama_cpp:qwen2.5-coder-0.5b:" + "a" * 64, "llama_cpp-qwen2.5-coder-0.5b"),
    ("llama_server:qwen2.5-coder-0.5b:" + "b" * 64 + ":" + "c" * 16, "llama_server-qwen2.5-coder-0.5b"),
    ("openai:gpt-4-0613", "openai-gpt-4-0613"),
    ("openai_compatible:stub-judge", "openai_compatible-stub-judge"),
    ("vllm:meta-llama/Llama-3-8B", "vllm-meta-llama_Llama-3-8B"),
])
def test_judge_name_is_the_judging_llm(identity, name):
    """FastChat judgment files are named after the LLM that judged, unless judging.judge_model_name says otherwise."""
    from tacos.benchmarks.suite import JudgeSpec, judge_name_from_identity

    assert judge_name_from_identity(identity) == name
    assert JudgeSpec().judge_name(identity) == name
    assert JudgeSpec(judge_model_name="gpt-4").judge_name(identity) == "gpt-4"
    with pytest.raises(ValueError, match="judge_model_name"):
        JudgeSpec(benchmarks={"mt_bench": _mt_bench()}, judge_model_name=" ").validate()


def test_mt_bench_radar_writes_a_png(tmp_path):
    from tacos.plots import mt_bench_radar

    for per_category in ({"writing": 7.5, "roleplay": 6.0, "math": None, "coding": 3.0}, {"writing": None}):
        out = mt_bench_radar(per_category, tmp_path / "sub" / "radar.png", "MT-Bench: m")
        assert out == tmp_path / "sub" / "radar.png" and out.read_bytes().startswith(b"\x89PNG")


def test_render_is_single_pass():
    out = render("Q: {question}\nA1: {answer_1}\n{literal}", question="use {answer_1} here", answer_1="x {question}")
    assert out == "Q: use {answer_1} here\nA1: x {question}\n{literal}"


# -- FastChat fidelity ---------------------------------------------------------------------------------------------
def test_mt_bench_prompts_are_fastchats(monkeypatch):
    """Our judge messages for all four single-answer prompts equal those FastChat's run_judge_single sends."""
    common = pytest.importorskip("fastchat.llm_judge.common", reason="the eval extra (fschat) is not installed")

    from tacos.data import load_mt_bench, mt_bench_judge_prompts, mt_bench_reference_answers

    prompts, refs = mt_bench_judge_prompts(), mt_bench_reference_answers()
    sent = []
    monkeypatch.setattr(common, "chat_completion_openai",
                        lambda model, conv, temperature, max_tokens, api_dict=None:
                        sent.append(conv.to_openai_api_messages()) or "Rating: [[6]]")
    questions = {q.category: q for q in reversed(load_mt_bench())}  # one question per category
    assert len(questions) == 8
    for category, q in questions.items():
        answer = {"choices": [{"turns": [f"first {{answer}} for {q.question_id}", "second answer"]}]}
        fc_question = {"question_id": int(q.question_id), "category": category, "turns": q.turns}
        for turn in (1, 2):
            name = mt_bench_prompt_name(category, turn)
            fc_ref = ({"choices": [{"turns": refs[q.question_id]}]} if category in common.NEED_REF_CATS else None)
            expected_name = ("single-math-v1" if fc_ref else "single-v1") + ("-multi-turn" if turn == 2 else "")
            assert name == expected_name
            judge = common.Judge("gpt-4", prompts[name], ref_based=fc_ref is not None, multi_turn=turn == 2)
            rating, fc_user, _ = common.run_judge_single(fc_question, answer, judge, fc_ref, multi_turn=turn == 2)
            ours = mt_bench_user_prompt(prompts[name], q.turns, answer["choices"][0]["turns"],
                                        refs.get(q.question_id) if fc_ref else None, turn)
            assert ours == fc_user and rating == 6
            assert sent[-1] == [{"role": "system", "content": prompts[name]["system_prompt"]},
                                {"role": "user", "content": ours}]


def _show_result(judgment_file: Path, workdir: Path, judge: str = "gpt-4") -> str:
    """FastChat's show_result, run where it expects its file: data/mt_bench/model_judgment/<judge>_single.jsonl."""
    pytest.importorskip("fastchat.llm_judge.show_result", reason="the eval extra (fschat) is not installed")
    target = workdir / "data" / "mt_bench" / "model_judgment" / f"{judge}_single.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(judgment_file.read_bytes())
    out = subprocess.run([sys.executable, "-m", "fastchat.llm_judge.show_result", "--bench-name", "mt_bench",
                          "--judge-model", judge, "--mode", "single"], cwd=workdir, capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_show_result_reads_rows(tmp_path):
    rows = [fastchat_single_row(81, "m1", "gpt-4", "single-v1", "u", "Rating: [[8]]", 8.0, 1, 1.0),
            fastchat_single_row(81, "m1", "gpt-4", "single-v1-multi-turn", "u", "no rating", None, 2, 1.0),
            fastchat_single_row(82, "m1", "gpt-4", "single-v1-multi-turn", "u", "[[5]]", 5.0, 2, 1.0)]
    assert rows[1]["score"] == -1 and rows[0]["judge"] == ["gpt-4", "single-v1"]
    f = tmp_path / "j.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _show_result(f, tmp_path / "fc")
    assert re.search(r"m1\s+1\s+8\.0", out) and re.search(r"m1\s+2\s+5\.0", out)  # the -1 row is dropped


# -- completeness guard --------------------------------------------------------------------------------------------
def _items(n_questions: int, bad: dict[tuple[str, int], str] | None = None) -> list[MTBenchItem]:
    cats = ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"]
    out = []
    for k in range(n_questions):
        qid, cat = str(81 + k), cats[k * len(cats) // n_questions]
        for turn in (1, 2):
            problem = (bad or {}).get((qid, turn), "")
            out.append(MTBenchItem(qid, cat, turn, None if problem else float(1 + (k + turn) % 10), problem))
    return out


def test_completeness_guard():
    full = mt_bench_summary(_items(80))
    assert full["complete"] and full["n_valid"] == full["n_expected"] == 160
    assert full["overall"] == pytest.approx(sum(i.score for i in _items(80)) / 160)
    assert set(full["per_category"]) == {"writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem",
                                         "humanities"}
    assert None not in (full["turn1"], full["turn2"])

    partial = mt_bench_summary(_items(80, {("95", 2): "no turn-2 answer", ("120", 1): "invalid judge answer"}))
    assert not partial["complete"] and partial["overall"] is None and partial["n_valid"] == 158
    assert partial["turn1"] is None and partial["turn2"] is None  # each turn misses one
    assert "158/160" in partial["message"] and "q95 turn 2 (no turn-2 answer)" in partial["message"]
    assert partial["per_category"]["writing"] is not None and partial["per_category"]["roleplay"] is None

    limited = mt_bench_summary(_items(2))  # judging.limit=2: 4 expected
    assert limited["complete"] and limited["n_expected"] == 4 and limited["overall"] is not None


def _mt_bench():
    from tacos.benchmarks.mt_bench import MTBenchBenchmark
    from tacos.judges.fastchat import FastChatSingleJudge
    from tacos.paths import BUNDLED_DATA_DIR

    return MTBenchBenchmark(judge=FastChatSingleJudge(prompts_file=str(BUNDLED_DATA_DIR / "mt_bench" /
                                                                       "judge_prompts.jsonl")))


def test_mt_bench_grader_checks_its_prompts_before_work(tmp_path):
    from tacos.benchmarks.mt_bench import MTBenchBenchmark
    from tacos.judges.fastchat import FastChatSingleJudge

    partial = tmp_path / "judge_prompts.jsonl"
    partial.write_text(json.dumps({"name": "single-v1", "system_prompt": "s", "prompt_template": "{question}"}) + "\n")
    with pytest.raises(ValueError, match="lacks the FastChat judge prompt"):
        MTBenchBenchmark(judge=FastChatSingleJudge(prompts_file=str(partial))).validate()
    with pytest.raises(FileNotFoundError, match="FastChat judge prompts"):
        FastChatSingleJudge(prompts_file=str(tmp_path / "nope.jsonl")).validate()
    with pytest.raises(ValueError, match="FastChat single-answer grader"):
        MTBenchBenchmark(judge=None).validate()


def test_mt_bench_plan_uses_references_for_60_judgments():
    from tacos.benchmarks.base import BenchmarkRun
    from tacos.data import load_mt_bench
    from tacos.answers.answer_files import Answers
    from tacos.judges.base import JudgeContext
    from tacos.paths import BUNDLED_DATA_DIR

    bench = _mt_bench()
    bench.validate()
    answers = Answers("m", Path("-"), {q.question_id: ["a1", "a2"] for q in load_mt_bench()})
    run = BenchmarkRun(Path("-"), None, BUNDLED_DATA_DIR, None, 0, None, JudgeContext(), "j", "x")
    plan = bench.plan(answers, run)
    assert len(plan) == 160 and all(item is not None for _, _, item, _ in plan)
    names = [mt_bench_prompt_name(q.category, t) for q, t, _, _ in plan]
    assert sum(n.startswith("single-math-v1") for n in names) == 60
    requests = bench.judge.answer_requests([item for _, _, item, _ in plan], JudgeContext())
    math_req = next(req for req, n in zip(requests, names) if n == "single-math-v1-multi-turn")
    assert "### Reference answer:" in math_req.messages[1][1]
    assert {r.max_tokens for r in requests} == {2048} and {r.temperature for r in requests} == {0.0}


# -- the stage through run.py against a stub judge -------------------------------------------------------------------
# Fake answers carry their "quality" (the score the stub judge gives) and an optional bias towards the answer shown
# first; "garbage" makes the judge answer without any score.
OURS = "ours-7b"
STUB_JUDGE = "openai_compatible-stub-judge"  # the judge's name derived from the stub LLM (llm.model=stub-judge)
VICUNA = {  # question_id: (ours, base-a)
    "1": ("quality=8", "quality=5"),            # win, win   -> win
    "2": ("quality=5", "quality=5"),            # tie, tie   -> tie
    "3": ("quality=3", "quality=7"),            # lose, lose -> lose
    "4": ("quality=6 bias=2", "quality=5"),     # win, lose  -> tie (inconsistent)
    "5": ("quality=7 bias=1", "quality=6"),     # win, tie   -> win
    "6": ("quality=6 bias=1", "quality=7"),     # tie, lose  -> lose
}
KOALA = {"koala_0": ("garbage", "quality=5"), "koala_1": ("quality=9", "quality=2"),
         "koala_2": ("quality=4", "quality=4"), "koala_3": (None, "quality=4")}  # ours did not answer koala_3
MT = {"81": ["quality=8", "quality=6"], "82": ["quality=7", "garbage"], "83": ["quality=4", "quality=5"],
      "84": ["quality=9", "quality=9"], "85": ["quality=2", "quality=3"], "86": ["quality=5", "quality=5"]}


def _quality(text: str) -> tuple[int, int]:
    q = re.search(r"quality=(\d+)", text)
    b = re.search(r"bias=(\d+)", text)
    return (int(q.group(1)) if q else 5), (int(b.group(1)) if b else 0)


def judge_responder(body: dict) -> str:
    messages = body.get("messages", [])
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    everything = "\n".join(m["content"] for m in messages)
    if "[Assistant 1's answer]" in user:  # our pairwise prompt
        a1 = user.split("[Assistant 1's answer]", 1)[1].split("[End of Assistant 1's answer]", 1)[0]
        a2 = user.split("[Assistant 2's answer]", 1)[1].split("[End of Assistant 2's answer]", 1)[0]
        if "garbage" in a1 + a2:
            return "Both answers are interesting, I cannot choose."
        (q1, b1), (q2, b2) = _quality(a1), _quality(a2)
        return f"{min(10, q1 + max(b1, b2))} {q2}\nAssistant 1 is judged on its own merits."
    if "[[rating]]" in everything:  # FastChat single-answer grading; turn 2 judges the last answer shown
        answers = re.findall(r"(?:\[The Start of Assistant's Answer\]|### Assistant A:)\n(.*?)\n", user)
        last = answers[-1] if answers else ""
        return "No rating today." if "garbage" in last else f"Looks fine.\nRating: [[{_quality(last)[0]}]]"
    return "I do not know this prompt."


def _answer_file(path: Path, model: str, answers: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"question_id": int(q) if q.isdigit() else q, "answer_id": f"a{q}", "model_id": model,
             "choices": [{"index": 0, "turns": t if isinstance(t, list) else [t]}], "tstamp": 1.0}
            for q, t in answers.items() if t is not None]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _fake_run(run_dir: Path, tmp: Path) -> tuple[str, str]:
    """A run dir whose infer stage is complete (our answers), plus two baselines: a run dir and an answer folder."""
    infer = run_dir / "infer"
    _answer_file(infer / "model_answer" / "vicuna" / f"{OURS}.jsonl", OURS, {q: a for q, (a, _) in VICUNA.items()})
    _answer_file(infer / "model_answer" / "koala" / f"{OURS}.jsonl", OURS, {q: a for q, (a, _) in KOALA.items()})
    _answer_file(infer / "model_answer" / "mt_bench" / f"{OURS}.jsonl", OURS, MT)
    (infer / "manifest.json").write_text(json.dumps({"stage": "infer", "status": "complete", "output_hash": "h1"}))
    base_a = tmp / "base_run"
    _answer_file(base_a / "infer" / "model_answer" / "vicuna" / "base-a.jsonl", "base-a",
                 {q: b for q, (_, b) in VICUNA.items()})
    _answer_file(base_a / "infer" / "model_answer" / "koala" / "base-a.jsonl", "base-a",
                 {q: b for q, (_, b) in KOALA.items()})
    base_b = tmp / "base_b_answers"  # a model_answer-style folder that only covers vicuna
    _answer_file(base_b / "vicuna" / "base-b.jsonl", "base-b", {q: "quality=6, says b" for q in VICUNA})
    return str(base_a), str(base_b)


@pytest.fixture(scope="module")
def judge_stub():
    with StubServer(responder=judge_responder) as server:
        yield server


PAIRWISE = "benchmarks.pairwise"


def _args(stub, tmp: Path, run_dir: Path, baselines: list[str], limit: int, *extra: str,
          benchmarks: str = "all", test_sets: str = "[vicuna,koala]") -> list[str]:
    pairwise = [f"{PAIRWISE}.test_sets={test_sets}", f"{PAIRWISE}.baselines=[{','.join(baselines)}]",
                f"{PAIRWISE}.n_boot=200"] if benchmarks != "mt_bench" else []
    return [*stub_overrides(stub, tmp), "stages=[judge]", f"benchmarks={benchmarks}", f"judging.limit={limit}",
            *pairwise,
            "client.parse_retries=1", f"hydra.run.dir={run_dir}", *extra]


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "judge" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def judged(judge_stub, tmp_path_factory):
    """Judge a subset (limit 3), then the full fake set (limit 6) in the same run dir."""
    tmp = tmp_path_factory.mktemp("judge")
    run_dir = tmp / "run"
    baselines = _fake_run(run_dir, tmp)
    first = run_cli(_args(judge_stub, tmp, run_dir, baselines, 3))
    assert first.returncode == 0, first.stderr[-3000:]
    small = _manifest(run_dir)
    after_small = judge_stub.count
    full = run_cli(_args(judge_stub, tmp, run_dir, baselines, 6))
    assert full.returncode == 0, full.stderr[-3000:]
    return {"tmp": tmp, "run_dir": run_dir, "baselines": baselines, "small": small, "full": _manifest(run_dir),
            "calls_small": after_small, "calls_full": judge_stub.count - after_small}


def test_both_orders_through_the_stage(judged, judge_stub):
    m, run_dir = judged["full"], judged["run_dir"]
    pw = m["stats"]["pairwise"]
    assert set(pw) == {"base-a", "base-b"} and set(pw["base-a"]) == {"vicuna", "koala"}
    assert set(pw["base-b"]) == {"vicuna"}  # base-b has no koala answers: skipped, not failed
    v = pw["base-a"]["vicuna"]
    assert STAT_KEYS <= set(v)
    assert (v["win"], v["tie"], v["lose"], v["n"], v["invalid"]) == (2, 2, 2, 6, 0)
    assert v["score"] == pytest.approx(1.0) and v["consistency"] == pytest.approx(3 / 6)
    assert v["ci_low"] <= v["score"] <= v["ci_high"]
    k = pw["base-a"]["koala"]
    # koala_0: the judge never gives scores -> invalid; koala_1 win; koala_2 tie; koala_3 has no answer of ours,
    # koala_4 and koala_5 none at all.
    assert (k["win"], k["tie"], k["lose"], k["n"], k["invalid"], k["missing"]) == (1, 1, 0, 2, 1, 3)
    assert pw["base-b"]["vicuna"]["n"] == 6
    # Both orders really reached the judge: each vicuna question of base-a once with ours first, once second.
    calls = [json.loads(x) for x in (run_dir / "judge" / "pairwise" / "judgments.jsonl").read_text().splitlines()]
    q4 = {c["order"]: c for c in calls if c["baseline"] == "base-a" and c["question_id"] == "4"}
    assert (q4["ours_first"]["score_first"], q4["ours_first"]["score_second"]) == (8, 5)
    assert (q4["baseline_first"]["score_first"], q4["baseline_first"]["score_second"]) == (7, 6)
    assert (q4["ours_first"]["verdict"], q4["baseline_first"]["verdict"]) == ("win", "lose")
    assert all(c["raw"] for c in calls)
    users = [r["messages"][-1]["content"] for r in judge_stub.requests]
    shown = "[Assistant 1's answer]\n{}\n[End of Assistant 1's answer]\n\n[Assistant 2's answer]\n{}\n"
    assert sum(shown.format("quality=6 bias=2", "quality=5") in u for u in users) == 1  # ours first
    assert sum(shown.format("quality=5", "quality=6 bias=2") in u for u in users) == 1  # base-a first
    assert m["counts"]["pairwise_calls"] == 2 * (6 + 3 + 6) and m["counts"]["pairwise_missing_answers"] == 3
    assert (run_dir / "judge" / "pairwise" / "win_tie_lose_base-a.png").is_file()
    assert "pairwise/win_tie_lose_base-b.png" in m["plots"] and "mt_bench/radar.png" in m["plots"]
    results = json.loads((run_dir / "judge" / "pairwise" / "results.json").read_text())
    assert results["results"] == pw and results["model"] == OURS
    assert m["stats"]["judge_llm"] == m["config"]["llm"]
    assert m["tables"]["pairwise"]["columns"][:3] == ["baseline", "test_set", "win"]
    # What the runner's gate reads: the pair judge's key (as `tacos judge-eval --judge judge` files its
    # measurements) and the position bias it showed here, over every question judged in both orders.
    s = m["stats"]["gate_judges"]["judge"]
    assert s["judge_pairwise"] is True and s["judge_name"] == "judge_pairwise" and len(s["judge_key"]) == 24
    assert s["judge_path"] == "judge" and s["judge_llm"] == m["stats"]["judge_llm"]
    assert s["judge_identity"]["judge"] == "LLMPairJudge" and s["judge_identity"]["mode"] == "text"
    assert s["n_pairs_both_orders"] > 0 and 0 <= s["first_position_win_rate"] <= 1 and 0 <= s["consistency"] <= 1
    assert s["invalid_rate"] == pytest.approx(1 / 15, abs=1e-4)  # koala_0: no scores in either order
    gate = json.loads((run_dir / "gate.json").read_text())["judge"]
    pair = gate["judges"]["judge"]
    assert pair["judge_key"] == s["judge_key"] and pair["judge_informative"] is False  # never measured here
    assert gate["judge_informative"] is False
    assert "judge_informative" not in m["stats"]  # the verdict is the runner's, never part of the stage's output


def test_the_mt_bench_grader_gets_a_gate_verdict_too(judged):
    """The judge stage reports MT-Bench's FastChat grader like its pair judge: its key under its config path, so the
    run's gate.json carries a verdict on it (the rating rules; here never measured, so not shown informative)."""
    m, run_dir = judged["full"], judged["run_dir"]
    path = "benchmarks.mt_bench.judge"
    s = m["stats"]["gate_judges"][path]
    assert s["judge_pairwise"] is False and s["judge_name"] == "fastchat_single" and s["judge_path"] == path
    assert s["judge_identity"]["judge"] == "FastChatSingleJudge"
    assert s["invalid_rate"] == pytest.approx(1 / 12, abs=1e-4)  # q82's turn 2 never gets a rating
    gate = json.loads((run_dir / "gate.json").read_text())["judge"]
    rated = gate["judges"][path]
    assert rated["judge_key"] == s["judge_key"] and rated["judge_informative"] is False
    # the rule it is held to is named, with the command that measures this very judge
    assert any("alpagasus_rating_test" in r and f"--ratings" in r and f"--judge {path}" in r
               for r in rated["judge_gate_reasons"])
    assert any(r.startswith(f"fastchat_single ({path}): ") for r in gate["judge_gate_reasons"])


def test_mt_bench_through_the_stage_and_show_result(judged):
    m, run_dir = judged["full"], judged["run_dir"]
    mt = m["stats"]["mt_bench"]
    # q82's turn-2 rating never comes: 11/12 valid, so no overall score (and no turn-2 mean).
    assert (mt["n_valid"], mt["n_expected"], mt["complete"]) == (11, 12, False)
    assert mt["overall"] is None and mt["turn2"] is None and "q82 turn 2" in mt["message"]
    assert mt["turn1"] == pytest.approx((8 + 7 + 4 + 9 + 2 + 5) / 6)
    assert mt["per_category"] == {"writing": None}
    small = judged["small"]["stats"]["mt_bench"]  # the first 3 questions only: q82 turn 2 is in there too
    assert small["n_expected"] == 6 and small["overall"] is None
    # Named after the judge that judged (judging.judge_model_name: null), as FastChat names it after its judge model.
    assert m["stats"]["judge_model_name"] == mt["judge_model_name"] == STUB_JUDGE
    judgment_file = run_dir / "judge" / "model_judgment" / f"{STUB_JUDGE}_single.jsonl"
    assert [p.name for p in judgment_file.parent.iterdir()] == [judgment_file.name]
    rows = [json.loads(x) for x in judgment_file.read_text().splitlines()]
    assert len(rows) == 12 and set(rows[0]) == {"question_id", "model", "judge", "user_prompt", "judgment", "score",
                                                "turn", "tstamp"}
    assert rows[0]["question_id"] == 81 and rows[0]["judge"] == [STUB_JUDGE, "single-v1"] and rows[0]["score"] == 8
    bad = next(r for r in rows if r["question_id"] == 82 and r["turn"] == 2)
    assert bad["score"] == -1 and bad["judge"][1] == "single-v1-multi-turn" and bad["judgment"] == "No rating today."
    out = _show_result(judgment_file, judged["tmp"] / "fastchat_cwd", judge=STUB_JUDGE)
    # FastChat averages the valid rows only: turn 1 35/6, turn 2 (6 + 5 + 9 + 3 + 5) / 5.
    assert re.search(rf"{OURS}\s+1\s+5\.833", out) and re.search(rf"{OURS}\s+2\s+5\.6\b", out), out


def test_subset_then_full_makes_only_the_new_calls(judged):
    small, full = judged["small"], judged["full"]
    # subset: 3 questions x 3 pairs (base-a vicuna, base-a koala, base-b vicuna) x 2 orders + 3 x 2 MT-Bench turns;
    # vicuna 2 and koala_2 have the same answer text on both sides, so both orders are one and the same prompt
    # (asked once); the garbage answers take a parse retry each (parse_retries=1): koala_0 x 2 orders, q82 turn 2.
    requested = 3 * 3 * 2 + 6
    assert small["llm"]["calls"] == requested - 2
    assert judged["calls_small"] == small["llm"]["calls"] + 3
    new_pairwise = (6 - 3) * 2 * 2  # vicuna q4-6 vs base-a and base-b; no koala question beyond koala_2 has answers
    new_mt = (6 - 3) * 2
    assert full["llm"]["calls"] == new_pairwise + new_mt
    assert full["llm"]["cache_hits"] == requested
    assert judged["calls_full"] == new_pairwise + new_mt  # exactly the new calls reached the judge


def test_rerun_makes_no_judge_calls(judged, judge_stub):
    tmp, run_dir = judged["tmp"], judged["run_dir"]
    before = judge_stub.count
    again = run_cli(_args(judge_stub, tmp, run_dir, judged["baselines"], 6))  # same run dir: stage skipped
    assert again.returncode == 0 and "skipped" in again.stderr + again.stdout
    run2 = tmp / "run2"  # a fresh run dir: every call from the cache, identical outputs
    _fake_run(run2, tmp / "other")
    out = run_cli(_args(judge_stub, tmp, run2, judged["baselines"], 6))
    assert out.returncode == 0, out.stderr[-3000:]
    assert judge_stub.count == before
    m2 = _manifest(run2)
    counts = judged["full"]["counts"]
    assert m2["llm"]["calls"] == 0 and m2["llm"]["cache_hits"] == counts["pairwise_calls"] + counts["mt_bench_calls"]
    assert m2["stats"]["pairwise"] == judged["full"]["stats"]["pairwise"]
    for f in (f"model_judgment/{STUB_JUDGE}_single.jsonl", "pairwise/verdicts.jsonl"):
        assert (run2 / "judge" / f).read_bytes() == (run_dir / "judge" / f).read_bytes()


def test_explicit_judge_model_name(judged, judge_stub):
    """judging.judge_model_name=gpt-4 names the file and its rows as FastChat's default judge (calls from the cache)."""
    tmp, before = judged["tmp"], judge_stub.count
    run3 = tmp / "run3"
    _fake_run(run3, tmp / "other3")
    out = run_cli([*_args(judge_stub, tmp, run3, judged["baselines"], 6, "judging.judge_model_name=gpt-4",
                         benchmarks="mt_bench")])
    assert out.returncode == 0, out.stderr[-3000:]
    assert judge_stub.count == before
    m = _manifest(run3)
    assert m["stats"]["judge_model_name"] == "gpt-4" and m["stats"]["judge_llm"].startswith("openai_compatible:stub-judge")
    judgment_file = run3 / "judge" / "model_judgment" / "gpt-4_single.jsonl"
    rows = [json.loads(x) for x in judgment_file.read_text().splitlines()]
    ours = [json.loads(x) for x in (judged["run_dir"] / "judge" / "model_judgment" /
                                    f"{STUB_JUDGE}_single.jsonl").read_text().splitlines()]
    assert rows == [{**r, "judge": ["gpt-4", r["judge"][1]]} for r in ours]
    assert re.search(rf"{OURS}\s+1\s+5\.833", _show_result(judgment_file, tmp / "fastchat_cwd3"))


def test_clear_errors(judged, judge_stub, tmp_path):
    run_dir = tmp_path / "err"
    base_a, _ = _fake_run(run_dir, tmp_path)
    no_baseline = run_cli(_args(judge_stub, tmp_path, run_dir, [], 2, benchmarks="pairwise"))
    assert no_baseline.returncode != 0 and f"no baselines named: set {PAIRWISE}.baselines" in no_baseline.stderr
    # A baseline run (benchmarks=all, no baselines): pairwise is skipped with the reason, MT-Bench is graded.
    baseline_run = run_cli(_args(judge_stub, tmp_path, run_dir, [], 2))
    assert baseline_run.returncode == 0, baseline_run.stderr[-2000:]
    assert "pairwise skipped: no baselines named" in baseline_run.stdout + baseline_run.stderr
    assert _manifest(run_dir)["stats"]["mt_bench"]["n_questions"] == 2
    missing = run_cli(_args(judge_stub, tmp_path, run_dir, [str(tmp_path / "nope")], 2))
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    no_infer = run_cli(_args(judge_stub, tmp_path, tmp_path / "empty_run", [base_a], 2))
    assert no_infer.returncode != 0 and "infer" in no_infer.stderr


def test_dry_run_forecast(judged, judge_stub, tmp_path):
    before = judge_stub.count
    out = run_cli([*_args(judge_stub, judged["tmp"], judged["run_dir"], judged["baselines"], 6), "dry_run=true"])
    assert out.returncode == 0, out.stderr[-2000:]
    plan = json.loads((judged["run_dir"] / "dry_run.json").read_text())["judge"]
    assert plan["exact"] and plan["calls"] == 0 and plan["reused"]  # complete with this config: would be skipped
    # Another limit (the fake sets have 6 questions): the stage would run again, its 42 calls all from the cache.
    out = run_cli([*_args(judge_stub, judged["tmp"], judged["run_dir"], judged["baselines"], 7), "dry_run=true"])
    assert out.returncode == 0, out.stderr[-2000:]
    plan = json.loads((judged["run_dir"] / "dry_run.json").read_text())["judge"]
    assert plan["exact"] and plan["cache_hits"] == 42 and plan["calls"] == 0 and not plan.get("reused")
    # No infer output yet: every question assumed answered (ours), baselines as they are: vicuna 6 x 2 baselines and
    # koala_0-3 of base-a (limit 6), both orders, plus 6 MT-Bench questions x 2 turns.
    empty = tmp_path / "not_inferred"
    out = run_cli([*_args(judge_stub, judged["tmp"], empty, judged["baselines"], 6), "dry_run=true"])
    assert out.returncode == 0, out.stderr[-2000:]
    plan = json.loads((empty / "dry_run.json").read_text())["judge"]
    assert not plan["exact"] and plan["calls"] + plan["cache_hits"] == 2 * (6 + 6 + 4) + 12
    assert judge_stub.count == before


def test_baselines_by_registered_name(judge_stub, tmp_path):
    """Bare names resolve in the answers registry of the same model; names not registered yet are skipped, listed,
    and part of the stage identity (judged once they exist)."""
    run_dir = tmp_path / "run"
    _fake_run(run_dir, tmp_path)
    registry = tmp_path / "outputs" / "answers" / "tiny"
    _answer_file(registry / "sample-random" / "vicuna" / "tiny-sample-random.jsonl", "tiny-sample-random",
                 {q: b for q, (_, b) in VICUNA.items()})
    args = _args(judge_stub, tmp_path, run_dir, ["sample-random", "sample-longest"], 3, benchmarks="pairwise",
                 test_sets="[vicuna]")
    out = run_cli(args)
    assert out.returncode == 0, out.stderr[-3000:]
    m = _manifest(run_dir)
    assert set(m["stats"]["pairwise"]) == {"tiny-sample-random"}
    assert m["stats"]["absent_baselines"] == ["sample-longest"]
    assert m["counts"]["pairwise_baselines"] == 1 and m["counts"]["pairwise_baselines_absent"] == 1
    assert m["config"]["config"]["benchmarks"]["pairwise"]["baselines"]["sample-longest"] is None
    assert "sample-longest" in out.stdout + out.stderr and "skipped" in out.stdout + out.stderr

    # The missing baseline appears: the stage runs again; only the new comparisons are new calls.
    before = judge_stub.count
    _answer_file(registry / "sample-longest" / "vicuna" / "tiny-sample-longest.jsonl", "tiny-sample-longest",
                 {q: "quality=5, says longest" for q in VICUNA})
    out = run_cli(args)
    assert out.returncode == 0, out.stderr[-3000:]
    m = _manifest(run_dir)
    assert set(m["stats"]["pairwise"]) == {"tiny-sample-random", "tiny-sample-longest"}
    assert m["stats"]["absent_baselines"] == []
    assert judge_stub.count - before == m["llm"]["calls"] == 3 * 2

    # missing_baselines=error, or only unregistered names with benchmarks=pairwise: a clear error before any call.
    out = run_cli([*args, f"{PAIRWISE}.baselines=[nope]", f"{PAIRWISE}.missing_baselines=error"])
    assert out.returncode != 0 and "no answers registered as 'nope'" in out.stderr
    out = run_cli([*args, f"{PAIRWISE}.baselines=[nope]"])
    assert out.returncode != 0 and "none of the baselines ['nope']" in out.stderr


def test_judge_eval_measures_the_stage_pair_judge_under_its_gate_key(judged, judge_stub, tmp_path):
    """`tacos judge-eval --judge judge` measures the judge stage's own judge (same object, prompts and
    read-out) and files the measurement under the key the stage's manifest names: the key the runner's gate looks up."""
    from tacos.cli import main as tacos_main
    from tacos.judges import gate as gates

    pairs = tmp_path / "toy_test.jsonl"
    pairs.write_text("".join(json.dumps({"id": f"p{k}", "instruction": "Name a fruit.", "output_1": a, "output_2": b,
                                         "preference": pref, "subset": "toy"}) + "\n"
                             for k, (a, b, pref) in enumerate([("quality=9 apple", "quality=2 stone", 1),
                                                               ("quality=3 rock", "quality=8 pear", 2)])))
    outputs = judged["tmp"] / "outputs"
    args = ["judge-eval", "--pairs", str(pairs), "--judge", "judge", "--out", str(tmp_path / "je"),
            "--n-boot", "50", "llm=openai_compatible", f"llm.base_url={judge_stub.base_url}", "llm.model=stub-judge",
            f"paths.output_dir={outputs}", "logger=none", "gate.relevance_rung=false"]
    assert tacos_main(args) == 0
    result = json.loads((tmp_path / "je" / "judge_eval.json").read_text())
    assert result["judge_key"] == judged["full"]["stats"]["gate_judges"]["judge"]["judge_key"]
    assert result["metrics"]["overall"]["agreement"] == pytest.approx(1.0)  # both orders, both pairs right
    assert gates.find([outputs / "judge_eval" / "measurements.jsonl"], result["judge_key"])


def test_judge_eval_measures_the_mt_bench_grader_under_its_gate_key(judged, judge_stub, tmp_path):
    """`tacos judge-eval --ratings F --judge benchmarks.mt_bench.judge` (the command its gate reason names)
    files the measurement under the key the stage reported for MT-Bench's grader."""
    from tacos.cli import main as tacos_main
    from tacos.judges import gate as gates

    ratings = tmp_path / "toy_rating_test.jsonl"
    ratings.write_text("".join(json.dumps({"id": f"r{k}", "instruction": "Name a fruit.", "output": o, "rating": r})
                               + "\n" for k, (o, r) in enumerate([("quality=9 apple", 9), ("quality=2 stone", 2),
                                                                  ("quality=6 pear", 6)])))
    outputs = judged["tmp"] / "outputs"
    path = "benchmarks.mt_bench.judge"
    args = ["judge-eval", "--ratings", str(ratings), "--judge", path, "--out", str(tmp_path / "je"), "--n-boot", "50",
            "benchmarks=all", "llm=openai_compatible", f"llm.base_url={judge_stub.base_url}", "llm.model=stub-judge",
            f"paths.output_dir={outputs}", "logger=none", "gate.relevance_rung=false"]
    assert tacos_main(args) == 0
    result = json.loads((tmp_path / "je" / "judge_eval.json").read_text())
    assert result["judge_key"] == judged["full"]["stats"]["gate_judges"][path]["judge_key"]
    assert result["metrics"]["overall"]["spearman"] == pytest.approx(1.0)
    assert gates.find([outputs / "judge_eval" / "measurements.jsonl"], result["judge_key"])
