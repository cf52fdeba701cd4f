"""End to end against the REAL embedded local LLM (llama.cpp + Qwen2.5-Coder-0.5B): every selection stage,
refinement and the logprob preference read-out; then a re-run that is served entirely from the cache."""
from __future__ import annotations

import json
import time

import pytest
from conftest import run_cli

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]


def _servers() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"]) if "llama_cpp.server" in " ".join(p.info["cmdline"] or [])]


def test_smoke_experiment_with_real_local_llm(tmp_path):
    before = set(_servers())
    run_dir = tmp_path / "real"
    common = ["experiment=smoke", f"paths.output_dir={tmp_path / 'outputs'}", "scorer.logprob_preference=true",
              "stages=[data,tag,normalize,cluster,score,select,export,refine]", "refine.max_tokens=120", "logger=wandb"]
    t0 = time.perf_counter()
    out = run_cli([*common, f"hydra.run.dir={run_dir}"], timeout=1500)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-4000:]
    m = {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("*/manifest.json")}
    assert set(m) == {"data", "tag", "normalize", "cluster", "score", "select", "export", "refine"}
    assert m["tag"]["llm"]["calls"] == 12 and m["tag"]["stats"]["invalid_rate"] <= 0.5
    assert m["tag"]["llm"]["server_start_seconds"] > 0
    assert m["score"]["counts"]["judgments"] > 0
    assert m["score"]["stats"]["consistency"] is None or 0 <= m["score"]["stats"]["consistency"] <= 1
    assert m["select"]["counts"]["selected"] >= 1
    assert m["refine"]["counts"]["rows"] == m["select"]["counts"]["selected"]
    judgments = [json.loads(line) for line in (run_dir / "score" / "judgments.jsonl").read_text().splitlines()]
    assert any(j["p_first_better"] is not None for j in judgments)  # logprobs came back from llama.cpp
    assert set(_servers()) <= before, "a llama.cpp server was left running"
    print(f"\nreal smoke run: {elapsed:.0f} s; "
          + ", ".join(f"{k} {v['seconds']:.0f}s/{v['llm'].get('calls', 0)} calls" for k, v in m.items()))

    # Second run, new run dir, same config: zero LLM calls, the server is never started, identical subset.
    run2 = tmp_path / "real2"
    out2 = run_cli([*common, f"hydra.run.dir={run2}"], timeout=600)
    assert out2.returncode == 0, out2.stderr[-3000:]
    m2 = {p.parent.name: json.loads(p.read_text()) for p in run2.glob("*/manifest.json")}
    assert sum(v["llm"].get("calls", 0) for v in m2.values()) == 0
    assert all("server_start_seconds" not in v["llm"] for v in m2.values())
    assert m2["export"]["stats"]["subset_sha256"] == m["export"]["stats"]["subset_sha256"]
