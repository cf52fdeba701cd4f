"""End to end against the REAL embedded local LLM (llama.cpp + Qwen2.5-Coder-0.5B).

1. `experiment=smoke`, the whole chain on CPU: real tagging and the default contrastive scoring (the relevance guard
   and likelihoods from the real scoring model) of 12 rows -> 8 selected -> tiny-model SFT (LLaMA-Factory +
   DeepSpeed ZeRO-3) -> answers -> pairwise + MT-Bench judging -> report, W&B offline. The dry-run forecast of LLM
   calls equals the calls made, stage by stage.
2. The selection stages with refinement and the LLM pairwise judge's forced one-token read-out; a re-run is served
   from the cache.
3. The default selection on the same 12 rows plus 12 rows with real defects (data/judge_eval/real_defects_pool_dev):
   at most one is selected (a selector with no signal passes with probability <= 0.034).
All share one call cache (the pools of 2 and 3 hold the instructions of 1: their tags are cache hits).
"""
from __future__ import annotations

import json
import os
import time

import pytest
from conftest import run_cli

from tacos.pipeline import STAGE_ORDER

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]


def _servers() -> list[int]:
    """Live llama.cpp servers; under pytest-xdist only those this worker's runs started (the other worker's tests start
    their own: the server inherits PYTEST_XDIST_WORKER from run.py)."""
    import psutil

    servers = ("llama_cpp.server", "tacos.llm.serving.llama_server_child")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return [p.pid for p in psutil.process_iter(["cmdline", "environ"])
            if any(s in " ".join(p.info["cmdline"] or []) for s in servers)
            and (worker is None or (p.info["environ"] or {}).get("PYTEST_XDIST_WORKER") == worker)]


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
    # (the forecast once the tags are known, exact for an LLM scoring judge: tests/test_experiments.py, on the stub)
    rest = run_cli(args, timeout=2400)
    elapsed = time.perf_counter() - t0
    assert rest.returncode == 0, rest.stderr[-4000:]

    m = _manifests(run_dir)
    assert set(m) == set(STAGE_ORDER) - {"refine"}
    assert m["tag"]["llm"]["calls"] == forecast["tag"]["calls"] == 12
    # The default judge needs no chat LLM: the guard and the ranker read the real scoring model's likelihoods.
    assert m["score"]["llm"].get("calls", 0) == forecast["score"]["calls"] == 0
    assert m["score"]["stats"]["likelihood_calls"] + m["score"]["stats"]["likelihood_cached"] >= 12
    # 1 question of 2 test sets x 2 orders (pairwise vs the base model) + 1 MT-Bench question x 2 turns
    assert m["judge"]["llm"]["calls"] == forecast["judge"]["calls"] == 2 * 2 + 2
    assert m["tag"]["stats"]["invalid_rate"] <= 0.5
    assert m["select"]["counts"]["selected"] == 8
    assert m["train"]["stats"]["launched"] and m["train"]["stats"]["deepspeed"] == "z3"
    assert m["infer"]["counts"]["missing"] == 0
    pw = m["judge"]["stats"]["pairwise"]["tiny-base"]
    assert set(pw) == {"koala", "vicuna"} and all(s["n"] + s["invalid"] == 1 for s in pw.values())
    assert m["report"]["counts"]["judged_runs"] == 1 and "tiny-base" in (run_dir / "report" / "report.md").read_text()
    answers = tmp_path / "outputs" / "answers"  # by model and run name; the model before SFT is the run `base`
    smoke_name = m["export"]["stats"].get("name") or json.loads((run_dir / "summary.json").read_text())["run_name"]
    assert smoke_name.startswith("smoke-")  # the label, then a hash of the selection config
    assert (answers / "tiny" / smoke_name / "koala" / f"tiny-{smoke_name}.jsonl").is_file()
    assert (answers / "tiny" / "base" / "vicuna" / "tiny-base.jsonl").is_file()
    # W&B offline: the pipeline's run (one per invocation; dry runs log nothing), LLaMA-Factory's training run, and
    # the lineage step runs of export, train and infer (pool -> subset -> model -> answers, tests/test_wandb_lineage.py).
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 5
    assert m["train"]["stats"]["wandb_group"].startswith("smoke")
    assert set(_servers()) <= before, "a llama.cpp server was left running"
    print(f"\nreal smoke experiment (whole chain): {elapsed:.0f} s; "
          + ", ".join(f"{k} {v['seconds']:.0f}s/{v['llm'].get('calls', 0)} calls" for k, v in m.items()))


def test_selection_with_refine_and_logprobs_then_cached_rerun(tmp_path, cache_dir):
    before = set(_servers())
    run_dir = tmp_path / "real"
    common = ["experiment=smoke", "dataset.limit=8", "selection.budget=2", "clustering.k=3",
              "clustering.dedup_label_sets=true", f"paths.output_dir={tmp_path / 'outputs'}",
              f"paths.cache_dir={cache_dir}", "scorer/judge=llm_logprob", "scorer.rounds=1",
              "stages=[data,clean,tag,normalize,cluster,score,select,export,refine]", "refine.max_tokens=120",
              "logger=wandb"]
    t0 = time.perf_counter()
    out = run_cli([*common, f"hydra.run.dir={run_dir}"], timeout=1500)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-4000:]
    m = _manifests(run_dir)
    assert set(m) == {"data", "clean", "tag", "normalize", "cluster", "score", "select", "export", "refine"}
    assert m["tag"]["llm"]["calls"] + m["tag"]["llm"]["cache_hits"] == 8
    assert m["score"]["counts"]["judgments"] > 0
    assert m["score"]["stats"]["raw_consistency"] is None or 0 <= m["score"]["stats"]["raw_consistency"] <= 1
    assert m["select"]["counts"]["selected"] >= 1
    assert m["refine"]["counts"]["rows"] == m["select"]["counts"]["selected"]
    judgments = [json.loads(line) for line in (run_dir / "score" / "judgments.jsonl").read_text().splitlines()]
    # logprobs came back from llama.cpp, the answer forced by its grammar; the mass is what the model put on "1"/"2"
    assert any(j["logit"] is not None for j in judgments)
    assert 0 < m["score"]["stats"]["mean_answer_mass"] <= 1
    assert "judge_informative" in json.loads((run_dir / "gate.json").read_text())["score"]
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


def test_the_default_selection_leaves_out_real_defects(tmp_path, cache_dir):
    """The smoke test's 12 rows (the same seeded draw from the sample: their tags are cache hits, the tagger reads the
    instruction only) and the 12 real-defect rows of data/judge_eval/real_defects_pool_dev.jsonl (answers invented for
    a link or an attachment, merged tasks, placeholders, a wrong answer, action claims, an answer cut after ~512
    tokens). The default run at a budget of 8 selects at least 7 rows and at most 1 defect: a selector with no signal
    passes that with probability <= 0.034 (tests/benchmarks/test_real_defects_pool.py asserts the bound; the
    benchmark with its statistics: measurements/bench_real_defects.py)."""
    import importlib.util

    from tacos.data.loaders import load_records
    from tacos.paths import BUNDLED_DATA_DIR, REPO_ROOT
    from tacos.records import record_id

    spec = importlib.util.spec_from_file_location("bench", REPO_ROOT / "measurements" / "bench_real_defects.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ci = bench.CI_CHECK
    sample = BUNDLED_DATA_DIR / "sample" / "alpaca_sample.jsonl.gz"
    good = [{"instruction": r.instruction, "input": r.input, "output": r.output}
            for r in load_records(sample, "alpaca", limit=ci["good"], seed=0)]  # what experiment=smoke's data reads
    defects = [r for r in map(json.loads, bench.POOLS.joinpath("real_defects_pool_dev.jsonl").read_text().splitlines())
               if r["defect"]][:ci["defects"]]
    pool = good + [{k: r[k] for k in ("instruction", "input", "output")} for r in defects]
    path = tmp_path / "real_defects.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in pool))
    bad = {record_id(r["instruction"], r["input"], r["output"]): r["defect"] for r in defects}
    run_dir = tmp_path / "real_defects"
    out = run_cli(["dataset=jsonl", f"dataset.path={path}", f"selection.budget={ci['budget']}",
                   f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path / 'outputs'}",
                   f"hydra.run.dir={run_dir}", "logger=none"], timeout=1500)
    assert out.returncode == 0, out.stderr[-4000:]
    chosen = [json.loads(line)["id"] for line in (run_dir / "select" / "selected.jsonl").read_text().splitlines()]
    picked = [bad[i] for i in chosen if i in bad]
    removed = [json.loads(line) for line in (run_dir / "clean" / "removed.jsonl").read_text().splitlines()]
    excluded = {r["id"]: "clean: " + "; ".join(r["checks"].values()) for r in removed}
    unscored = run_dir / "select" / "excluded.jsonl"  # written when some record got no score
    if unscored.is_file():
        excluded |= {json.loads(line)["id"]: json.loads(line)["reason"] for line in unscored.read_text().splitlines()}
    print(f"\nreal-defects pool: {len(picked)} of {len(bad)} defect rows selected in {len(chosen)} ({picked}); "
          f"a no-signal selector passes with p = "
          f"{bench.no_signal_pass_rate(len(pool), len(bad), len(chosen), ci['pass_bar']):.3f}; screened: "
          + "; ".join(f"{bad.get(i, 'good')}: {why}" for i, why in excluded.items()))
    assert ci["min_selected"] <= len(chosen) <= ci["budget"] and len(picked) <= ci["pass_bar"]
