"""End to end against the REAL embedded local LLM (llama.cpp + Qwen2.5-Coder-0.5B).

1. `experiment=smoke`, the whole chain on CPU: real tagging and contrastive scoring of 20 rows -> 16 selected ->
   tiny-model SFT (LLaMA-Factory + DeepSpeed ZeRO-3) -> answers -> pairwise + MT-Bench judging -> report, W&B
   offline. The dry-run forecast of LLM calls equals the calls made, stage by stage.
2. The selection stages with refinement and the logprob preference read-out; a re-run is served from the cache.
Both share one call cache (the 12-row pool of 2 is inside the 20-row pool of 1: its tags are cache hits).
"""
from __future__ import annotations

import json
import time

import pytest
from conftest import run_cli

from tacos.pipeline import STAGE_ORDER

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]


def _servers() -> list[int]:
    import psutil

    servers = ("llama_cpp.server", "tacos.llm.llama_server_child")
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if any(s in " ".join(p.info["cmdline"] or []) for s in servers)]


def _manifests(run_dir) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("*/manifest.json")}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("real_llm_cache")


def test_smoke_experiment_whole_chain_with_real_local_llm(tmp_path, cache_dir):
    pytest.importorskip("llamafactory")
    before = set(_servers())
    run_dir = tmp_path / "smoke"
    args = ["experiment=smoke", f"paths.output_dir={tmp_path / 'outputs'}", f"paths.cache_dir={cache_dir}",
            f"hydra.run.dir={run_dir}"]
    t0 = time.perf_counter()
    assert run_cli([*args, "dry_run=true"]).returncode == 0
    forecast = json.loads((run_dir / "dry_run.json").read_text())
    part1 = run_cli([*args, "stages=[data,tag,normalize,cluster]"], timeout=2400)
    assert part1.returncode == 0, part1.stderr[-4000:]
    # With the tags known the scoring forecast is exact; the judge forecast counts calls before any answer exists.
    assert run_cli([*args, "dry_run=true"]).returncode == 0
    forecast2 = json.loads((run_dir / "dry_run.json").read_text())
    rest = run_cli(args, timeout=2400)
    elapsed = time.perf_counter() - t0
    assert rest.returncode == 0, rest.stderr[-4000:]

    m = _manifests(run_dir)
    assert set(m) == set(STAGE_ORDER) - {"refine"}
    assert m["tag"]["llm"]["calls"] == forecast["tag"]["calls"] == 20
    assert forecast2["score"]["exact"] and m["score"]["llm"]["calls"] == forecast2["score"]["calls"] > 0
    assert m["judge"]["llm"]["calls"] == forecast["judge"]["calls"] == forecast2["judge"]["calls"] == 12
    assert m["tag"]["stats"]["invalid_rate"] <= 0.5
    assert m["select"]["counts"]["selected"] == 16
    assert m["train"]["stats"]["launched"] and m["train"]["stats"]["deepspeed"] == "z3"
    assert m["infer"]["counts"]["missing"] == 0
    pw = m["judge"]["stats"]["pairwise"]["tiny-base"]
    assert set(pw) == {"koala", "vicuna"} and all(s["n"] == 2 for s in pw.values())
    assert m["report"]["counts"]["judged_runs"] == 1
    # W&B offline: the pipeline's runs (one per invocation) and LLaMA-Factory's training run, in one group.
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 3
    assert m["train"]["stats"]["wandb_group"] == "smoke"
    assert set(_servers()) <= before, "a llama.cpp server was left running"
    print(f"\nreal smoke experiment (whole chain): {elapsed:.0f} s; "
          + ", ".join(f"{k} {v['seconds']:.0f}s/{v['llm'].get('calls', 0)} calls" for k, v in m.items()))


def test_selection_with_refine_and_logprobs_then_cached_rerun(tmp_path, cache_dir):
    before = set(_servers())
    run_dir = tmp_path / "real"
    common = ["experiment=smoke", "dataset.limit=12", "selection.budget=4", "clustering.k=4",
              "clustering.dedup_label_sets=true", f"paths.output_dir={tmp_path / 'outputs'}",
              f"paths.cache_dir={cache_dir}", "scorer.judgment=logprob",
              "stages=[data,tag,normalize,cluster,score,select,export,refine]", "refine.max_tokens=120",
              "logger=wandb"]
    t0 = time.perf_counter()
    out = run_cli([*common, f"hydra.run.dir={run_dir}"], timeout=1500)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-4000:]
    m = _manifests(run_dir)
    assert set(m) == {"data", "tag", "normalize", "cluster", "score", "select", "export", "refine"}
    assert m["tag"]["llm"]["calls"] + m["tag"]["llm"]["cache_hits"] == 12
    assert m["score"]["counts"]["judgments"] > 0
    assert m["score"]["stats"]["consistency"] is None or 0 <= m["score"]["stats"]["consistency"] <= 1
    assert m["select"]["counts"]["selected"] >= 1
    assert m["refine"]["counts"]["rows"] == m["select"]["counts"]["selected"]
    judgments = [json.loads(line) for line in (run_dir / "score" / "judgments.jsonl").read_text().splitlines()]
    assert m["score"]["stats"]["judgment"] == "logprob"
    assert any(j["p_first_better_debiased"] is not None for j in judgments)  # logprobs came back from llama.cpp
    assert "judge_informative" in m["score"]["stats"]
    assert set(_servers()) <= before, "a llama.cpp server was left running"
    print(f"\nreal selection + refine run: {elapsed:.0f} s; "
          + ", ".join(f"{k} {v['seconds']:.0f}s/{v['llm'].get('calls', 0)} calls" for k, v in m.items()))

    # Second run, new run dir and no stage sharing: zero LLM calls, the server never starts, identical subset.
    run2 = tmp_path / "real2"
    out2 = run_cli([*common, f"hydra.run.dir={run2}", "share_outputs=false"], timeout=600)
    assert out2.returncode == 0, out2.stderr[-3000:]
    m2 = _manifests(run2)
    assert sum(v["llm"].get("calls", 0) for v in m2.values()) == 0
    assert all("server_start_seconds" not in v["llm"] for v in m2.values())
    assert m2["export"]["stats"]["subset_sha256"] == m["export"]["stats"]["subset_sha256"]
