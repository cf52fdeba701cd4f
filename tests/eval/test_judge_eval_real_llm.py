"""`tacos judge-eval` against the REAL embedded local LLM on a handful of labelled pairs: every pair judged in both
orders with one-token log-probability calls, nothing invalid, and a re-run served from the cache (no server)."""
from __future__ import annotations

import json

import pytest
from conftest import REPO

from tacos.cli import main as tacos_main

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]


def test_judge_eval_on_the_real_local_model(tmp_path):
    pairs = tmp_path / "swapped_handful.jsonl"
    rows = (REPO / "data" / "judge_eval" / "swapped_response_dev.jsonl").read_text().splitlines()[:4]
    pairs.write_text("\n".join(rows) + "\n")
    args = ["judge-eval", "--pairs", str(pairs), "--out", str(tmp_path / "je"), "--n-boot", "200",
            f"paths.output_dir={tmp_path / 'o'}", "logger=none", "scorer.judgment=logprob"]
    assert tacos_main(args) == 0
    result = json.loads((tmp_path / "je" / "judge_eval.json").read_text())
    overall = result["metrics"]["overall"]
    assert result["judge"].startswith("llama_server:") and result["mode"] == "logprob"
    assert overall["n"] == 4 and overall["calls"] == 8 and overall["invalid_rate"] == 0
    assert overall["agreement_ci"] is not None and overall["seconds_per_1000"] > 0
    measured = (tmp_path / "o" / "judge_eval" / "measurements.jsonl").read_text().splitlines()
    assert len(measured) == 1
    # Cached: the same numbers, and no server needed (the session never starts one when nothing is new).
    assert tacos_main(args) == 0
    again = json.loads((tmp_path / "je" / "judge_eval.json").read_text())
    assert again["metrics"] == result["metrics"]
