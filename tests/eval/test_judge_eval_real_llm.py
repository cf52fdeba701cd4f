"""`tacos judge-eval` against the REAL embedded models on a handful of labelled pairs: the default judge exactly as
the score stage uses it (no overrides: the guard and the scoring model's likelihoods), and the LLM pairwise judge
with its forced one-token read-out (llama.cpp, both orders); re-runs come from the cache."""
from __future__ import annotations

import json

import pytest
from conftest import REPO

from tacos.cli import main as tacos_main

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]


def _handful(tmp_path, suite: str, n: int):
    path = tmp_path / f"{suite}_handful.jsonl"
    rows = (REPO / "data" / "judge_eval" / f"{suite}_dev.jsonl").read_text().splitlines()[:n]
    path.write_text("\n".join(rows) + "\n")
    return path


def _timeless(metrics: dict) -> dict:
    return {s: {k: v for k, v in m.items() if k != "seconds_per_item"} for s, m in metrics.items()}


def test_the_default_judge_on_the_real_models(tmp_path):
    args = ["judge-eval", "--pairs", str(_handful(tmp_path, "cross_instruction", 6)), "--out", str(tmp_path / "je"),
            "--n-boot", "200", f"paths.output_dir={tmp_path / 'o'}", "logger=none"]
    assert tacos_main(args) == 0
    result = json.loads((tmp_path / "je" / "judge_eval.json").read_text())
    overall = result["metrics"]["overall"]
    assert result["judge_name"] == "guarded_length" and result["llm"] is None  # no chat LLM in the default
    assert overall["n"] == 6 and overall["invalid_rate"] == 0 and overall["agreement"] >= 5 / 6
    assert overall["likelihood_passes_per_item"] > 0 and overall["llm_calls_per_item"] == 0
    measured = [json.loads(x) for x in (tmp_path / "o" / "judge_eval" / "measurements.jsonl").read_text().splitlines()]
    assert len(measured) == 1 and measured[0]["judge_key"] == result["judge_key"]
    assert tacos_main(args) == 0
    again = json.loads((tmp_path / "je" / "judge_eval.json").read_text())
    assert _timeless(again["metrics"]) == _timeless(result["metrics"])


def test_the_llm_pairwise_judge_on_the_real_local_model(tmp_path):
    args = ["judge-eval", "--pairs", str(_handful(tmp_path, "swapped_response", 3)), "--out", str(tmp_path / "je"),
            "--n-boot", "200", f"paths.output_dir={tmp_path / 'o'}", "logger=none", "scorer/judge=llm_logprob"]
    assert tacos_main(args) == 0
    result = json.loads((tmp_path / "je" / "judge_eval.json").read_text())
    overall = result["metrics"]["overall"]
    assert result["llm"].startswith("llama_server:") and result["judge"]["mode"] == "logprob"
    assert overall["n"] == 3 and overall["llm_calls_per_item"] == 2 and overall["invalid_rate"] == 0
    assert 0 < overall["mean_answer_mass"] <= 1 and overall["seconds_per_item"] > 0
    assert tacos_main(args) == 0  # cached: the same numbers, and no server started
    assert json.loads((tmp_path / "je" / "judge_eval.json").read_text())["metrics"] == result["metrics"]
