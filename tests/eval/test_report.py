"""Stage `report` and `tacos report`: a synthetic sweep dir with fake judge manifests -> the paper-style table."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from tacos.benchmarks.alpaca_eval import AlpacaEval2Benchmark
from tacos.benchmarks.mt_bench import MTBenchBenchmark
from tacos.benchmarks.pairwise import PairwiseBenchmark
from tacos.benchmarks.report import SUMMARY_COLUMNS, find_runs, result_rows, summary_rows, write_report


def wtl(win: int, tie: int, lose: int) -> dict:
    n = win + tie + lose
    return {"win": win, "tie": tie, "lose": lose, "n": n, "score": round((win - lose) / n + 1, 6), "ci_low": 0.9,
            "ci_high": 1.3, "consistency": 0.8, "invalid": 0, "missing": 0}


def manifest(stage: str, counts: dict | None = None, stats: dict | None = None, calls: int = 0,
             cost: float = 0.0) -> dict:
    return {"stage": stage, "status": "complete", "counts": counts or {}, "stats": stats or {},
            "llm": {"calls": calls, "cost_usd": cost} if calls else {}}


def judged(stats: dict) -> dict:
    """A judge manifest's stats as the judge stage writes them: each benchmark's stats and its report rows."""
    benches = [b for b in (PairwiseBenchmark(), MTBenchBenchmark(), AlpacaEval2Benchmark()) if b.name in stats]
    rows = {b.name: [{"vs": r.vs, "columns": r.columns, "cells": r.cells} for r in b.summary(stats)] for b in benches}
    return {**stats, "report_rows": rows}


def make_run(root: Path, name: str, run_name: str, selection: str, stages: dict[str, dict]) -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(
        f"run_name: {run_name}\nselection:\n  name: {selection}\nmodel:\n  name: tiny\n", encoding="utf-8")
    for stage, m in stages.items():
        (run / stage).mkdir()
        (run / stage / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    return run


@pytest.fixture
def sweep(tmp_path) -> Path:
    root = tmp_path / "sweep"
    mt = {"turn1": 5.5, "turn2": 4.5, "overall": 5.0, "model": "tiny-tacos", "complete": True}
    alpaca = {"win_rate": 12.5, "length_controlled_winrate": 10.25, "reference": "gpt4_1106_preview"}
    pairwise = {"alpaca-52k": {"koala": wtl(100, 50, 30), "vicuna": wtl(40, 20, 20)},
                "lima-1k": {"koala": wtl(90, 60, 30)}}
    make_run(root, "0_tacos", "sample-tacos-contrastive-kmeans", "tacos", {
        "select": manifest("select", {"selected": 6}),
        "export": manifest("export", stats={"subset_sha256": "ab" * 32}),
        "tag": manifest("tag", calls=40, cost=0.01),
        "score": manifest("score", calls=20, cost=0.02),
        "infer": manifest("infer", stats={"model_id": "tiny-tacos"}),
        "judge": manifest("judge", stats=judged({"pairwise": pairwise, "mt_bench": mt, "alpaca_eval2": alpaca}),
                          calls=100, cost=1.0)})
    make_run(root, "1_random", "sample-random-contrastive-kmeans", "random", {
        "select": manifest("select", {"selected": 6}),
        "infer": manifest("infer", stats={"model_id": "tiny-random"}),
        "judge": manifest("judge", stats=judged({"mt_bench": {"turn1": 3.0, "turn2": 2.0, "overall": 2.5}}))})
    run = make_run(root, "2_longest", "sample-longest-length-none", "longest",
                   {"select": manifest("select", {"selected": 6})})
    # Nothing inside hidden folders, W&B logs or stage folders counts as a run.
    for junk in (".infer_work/x/judge", "wandb/latest/judge", "select/inner/judge"):
        (run / junk).mkdir(parents=True, exist_ok=True)
        (run / junk / "manifest.json").write_text(json.dumps(manifest("judge", stats={"mt_bench": mt})))
    return root


def test_rows_and_columns(sweep):
    runs = find_runs(sweep)
    assert [r.label for r in runs] == ["0_tacos", "1_random", "2_longest"]
    results = result_rows(runs)
    rows = [dict(zip(results.columns, r)) for r in results.rows]
    assert [(r["run"], r["model"], r["baseline"]) for r in rows] == [
        ("sample-tacos-contrastive-kmeans", "tiny-tacos", "alpaca-52k"),
        ("sample-tacos-contrastive-kmeans", "tiny-tacos", "gpt4_1106_preview"),
        ("sample-tacos-contrastive-kmeans", "tiny-tacos", "lima-1k"),
        ("sample-random-contrastive-kmeans", "tiny-random", "")]
    # AlpacaEval 2 is a row of its own (against its reference model), MT-Bench joined to every row of the run
    assert (rows[1]["alpaca_eval2_win_rate"], rows[1]["alpaca_eval2_lc_win_rate"], rows[1]["mt_bench"]) == \
        (12.5, 10.25, 5.0)
    assert rows[1]["koala_win"] is None and rows[0]["alpaca_eval2_win_rate"] is None
    rows = [rows[0], rows[2], rows[3]]
    first = rows[0]
    assert (first["koala_win"], first["koala_tie"], first["koala_lose"]) == (100, 50, 30)
    assert first["koala_score"] == pytest.approx(1 + 70 / 180, abs=1e-6) and first["vicuna_score"] == 1.25
    assert first["lima_win"] is None and first["selection"] == "tacos"
    assert (first["mt_bench_turn1"], first["mt_bench_turn2"], first["mt_bench"]) == (5.5, 4.5, 5.0)
    assert rows[1]["mt_bench"] == 5.0 and rows[1]["vicuna_win"] is None  # MT-Bench repeats on every baseline row
    assert rows[2]["mt_bench"] == 2.5 and rows[2]["koala_win"] is None
    summary = [dict(zip(SUMMARY_COLUMNS, r)) for r in summary_rows(runs)]
    assert [(s["selection"], s["selected"], s["judged"]) for s in summary] == [
        ("tacos", 6, True), ("random", 6, True), ("longest", 6, False)]
    assert summary[0]["llm_calls"] == 160 and summary[0]["cost_usd"] == 1.03 and summary[0]["subset_sha256"] == "ab" * 8


def test_report_resolves_run_names_and_names_the_dataset(tmp_path):
    """Hydra saves .hydra/config.yaml unresolved (run_name: ${dataset.name}-tacos): the report resolves it, and the
    resolved name written at the end of a run (summary.json) wins; two datasets' TACOS runs are told apart."""
    root = tmp_path / "sweep"
    for i, ds in enumerate(("alpaca", "evol_instruct")):
        run = make_run(root, f"{i}_tacos", "${dataset.name}-tacos", "tacos",
                       {"select": manifest("select", {"selected": 6})})
        cfg = (run / ".hydra" / "config.yaml").read_text().replace("run_name: ${dataset.name}-tacos",
                                                                     "run_name: '${dataset.name}-tacos'")
        (run / ".hydra" / "config.yaml").write_text(cfg + f"dataset:\n  name: {ds}\n")
    (root / "1_tacos" / "summary.json").write_text(json.dumps({"run_name": "evol_instruct-tacos-1a2b3c",
                                                               "dataset": "evol_instruct"}))
    summary = [dict(zip(SUMMARY_COLUMNS, r)) for r in summary_rows(find_runs(root))]
    assert [(s["run"], s["dataset"]) for s in summary] == [("alpaca-tacos", "alpaca"),
                                                           ("evol_instruct-tacos-1a2b3c", "evol_instruct")]
    md = write_report(root, tmp_path / "out")["markdown"]
    assert "${" not in md and "| alpaca-tacos | alpaca | tacos |" in md


def test_tacos_report_cli(sweep, tmp_path):
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "tacos.cli", "report", str(sweep), "--out", str(out)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "100/50/30 (1.39)" in res.stdout and "3 run dir(s), 2 with judge results" in res.stdout
    with open(out / "report.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == result_rows(find_runs(sweep)).columns and len(table) == 5
    md = (out / "report.md").read_text()
    assert "| sample-tacos-contrastive-kmeans | – | tacos | tiny-tacos | alpaca-52k | 5.00 (5.50/4.50) |" in md
    assert "| gpt4_1106_preview | 5.00 (5.50/4.50) | – | – | – | – | – | 12.50 / 10.25 |" in md
    assert "AlpacaEval 2 WR / LC" in md
    assert "sample-longest-length-none" in md  # listed among the selection runs
    script = Path(sys.executable).with_name("tacos")  # the console script, once the package is installed
    if script.is_file():
        res = subprocess.run([str(script), "report", str(sweep)], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and (sweep / "report.md").is_file(), res.stderr
    bad = subprocess.run([sys.executable, "-m", "tacos.cli", "report", str(tmp_path / "none")], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a folder" in bad.stderr


def test_report_stage_over_a_sweep_dir_runs_again_on_new_results(sweep):
    args = ["stages=[report]", "logger=none", f"hydra.run.dir={sweep}"]
    out = run_cli(args)
    assert out.returncode == 0, out.stderr[-3000:]
    man = json.loads((sweep / "report" / "manifest.json").read_text())
    assert man["counts"] == {"runs": 3, "judged_runs": 2, "result_rows": 4, "selection_runs": 3}
    assert man["tables"]["results"]["columns"] == result_rows(find_runs(sweep)).columns
    assert len(man["tables"]["results"]["data"]) == 4
    assert {"report.md", "report.csv", "summary.csv"} <= set(man["outputs"])
    # A run finishes judging later: the report is collected again, not skipped.
    (sweep / "2_longest" / "judge").mkdir()
    (sweep / "2_longest" / "judge" / "manifest.json").write_text(
        json.dumps(manifest("judge", stats=judged({"mt_bench": {"turn1": 1.0, "turn2": 1.0, "overall": 1.0}}))))
    out = run_cli(args)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((sweep / "report" / "manifest.json").read_text())["counts"]["judged_runs"] == 3
