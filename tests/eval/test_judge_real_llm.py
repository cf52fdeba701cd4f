"""The judge stage against the REAL embedded local LLM (llama.cpp + Qwen2.5-Coder-0.5B) through run.py: 2 pairwise
questions x 2 orders and 2 MT-Bench questions x 2 turns. Checks plumbing and formats, not judgement quality (a 0.5B
judge often breaks the format: such calls must come out invalid, never as a score)."""
from __future__ import annotations

import json
import time

import pytest
from conftest import run_cli
from test_judge import STAT_KEYS, _answer_file, _show_result

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]

OURS = {"1": "Plan your day the evening before, do the hardest task first, batch small tasks and block "
             "distractions during focused work sessions.",
        "2": "Exercise regularly, sleep enough, talk to people you trust and break big problems into small steps."}
BASE = {"1": "Use a calendar.", "2": "Relax."}
MT = {"81": ["Aloha from Hawaii! I hiked Diamond Head, learned hula in Honolulu and ate fresh poke.",
             "Aloha! Amazing adventures await anyone arriving at Oahu's beaches."],
      "82": ["Subject: Feedback on the Quarterly Financial Report\n\nDear Ms. Lee, could you review my report? "
             "I would value your view on the data analysis, the presentation style and the clarity of the "
             "conclusions. Best regards, Sam",
             "My email is short and polite, asks for feedback on three clear points, and could list a deadline."]}


def test_judge_stage_with_real_local_llm(tmp_path):
    run_dir = tmp_path / "run"
    infer = run_dir / "infer" / "model_answer"
    _answer_file(infer / "vicuna" / "ours.jsonl", "ours", OURS)
    _answer_file(infer / "mt_bench" / "ours.jsonl", "ours", MT)
    (run_dir / "infer" / "manifest.json").write_text(json.dumps({"stage": "infer", "status": "complete",
                                                                 "output_hash": "fake"}))
    _answer_file(tmp_path / "baseline" / "vicuna" / "terse.jsonl", "terse", BASE)
    args = ["llm=local", "logger=none", f"paths.output_dir={tmp_path / 'outputs'}", "stages=[judge]", "benchmarks=all",
            "judging.limit=2", "benchmarks.pairwise.test_sets=[vicuna]",
            f"benchmarks.pairwise.baselines=[{tmp_path / 'baseline'}]", "judge.max_tokens=32",
            "benchmarks.mt_bench.judge.max_tokens=64", "benchmarks.pairwise.n_boot=100",
            "client.parse_retries=0",
            f"hydra.run.dir={run_dir}"]
    t0 = time.perf_counter()
    out = run_cli(args, timeout=400)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-4000:]
    m = json.loads((run_dir / "judge" / "manifest.json").read_text())
    assert m["llm"]["calls"] == 8 and m["llm"]["server_start_seconds"] > 0
    assert "qwen" in m["stats"]["judge_llm"].lower()

    stats = m["stats"]["pairwise"]["terse"]["vicuna"]
    assert STAT_KEYS <= set(stats) and stats["n"] + stats["invalid"] == 2
    calls = [json.loads(x) for x in (run_dir / "judge" / "pairwise" / "judgments.jsonl").read_text().splitlines()]
    assert [c["order"] for c in calls] == ["ours_first", "baseline_first"] * 2
    for c in calls:
        assert c["raw"] and c["status"] in ("ok", "invalid")
        assert (c["verdict"] is None) == (c["status"] == "invalid")
        if c["status"] == "ok":
            assert 1 <= c["score_first"] <= 10 and 1 <= c["score_second"] <= 10

    mt = m["stats"]["mt_bench"]
    assert mt["n_expected"] == 4 and 0 <= mt["n_valid"] <= 4
    assert (mt["overall"] is not None) == mt["complete"] == (mt["n_valid"] == 4)
    judge_name = m["stats"]["judge_model_name"]  # derived from the local model: llama_..-<model name>
    assert judge_name.startswith("llama") and judge_name == mt["judge_model_name"]
    judgment_file = run_dir / "judge" / "model_judgment" / f"{judge_name}_single.jsonl"
    rows = [json.loads(x) for x in judgment_file.read_text().splitlines()]
    assert sorted((r["question_id"], r["turn"]) for r in rows) == [(81, 1), (81, 2), (82, 1), (82, 2)]
    assert all(r["score"] == -1 or 1 <= r["score"] <= 10 for r in rows)
    assert {r["judge"][1] for r in rows} == {"single-v1", "single-v1-multi-turn"}
    if any(r["score"] != -1 for r in rows):
        assert "ours" in _show_result(judgment_file, tmp_path / "fastchat_cwd", judge=judge_name)
    print(f"\nreal judge run: {elapsed:.0f} s (server start {m['llm']['server_start_seconds']:.0f} s); pairwise "
          f"{stats}; MT-Bench valid {mt['n_valid']}/4: {[r['score'] for r in rows]}; first raw answers: "
          f"{[c['raw'][:60] for c in calls[:2]]}")

    # Same config in a fresh run dir: everything from the cache, the server is never started.
    run2 = tmp_path / "run2"
    (run2 / "infer").mkdir(parents=True)
    (run2 / "infer" / "model_answer").symlink_to(infer)
    (run2 / "infer" / "manifest.json").write_text((run_dir / "infer" / "manifest.json").read_text())
    again = run_cli([*args[:-1], f"hydra.run.dir={run2}"], timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    m2 = json.loads((run2 / "judge" / "manifest.json").read_text())
    assert m2["llm"]["calls"] == 0 and "server_start_seconds" not in m2["llm"]
    assert m2["stats"]["pairwise"] == m["stats"]["pairwise"]
