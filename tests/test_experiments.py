"""The experiment layer: paper overlays x models compose into the whole chain, stage outputs are shared between
runs, the sweep grid forecasts (multirun.sh --dry-run), W&B names and groups."""
from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, run_cli, stub_overrides
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tacos.run_names import run_label_of
from tacos.pipeline import STAGE_ORDER
from tacos.store import StageStore
from tacos.tracking import run_identity

PAPER = ["tacos_alpaca", "tacos_evol", "wo_contrastive", "wo_cluster", "refined"]
BASELINES = ["baseline_random", "baseline_longest", "baseline_full", "baseline_alpagasus", "baseline_ifd",
             "baseline_lima"]
MODELS = ["llama2_7b", "llama2_13b", "mistral7b"]


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("experiment", PAPER + BASELINES)
@pytest.mark.parametrize("model", MODELS)
def test_paper_overlays_run_the_whole_chain(experiment, model):
    cfg = _compose(f"experiment={experiment}", f"model={model}")
    stages = list(cfg.stages)
    assert stages == sorted(stages, key=STAGE_ORDER.index)
    assert stages[-4:] == ["train", "infer", "judge", "report"] and "export" in stages
    assert cfg.model.name == model
    if experiment in PAPER:
        assert list(cfg.benchmarks) == ["pairwise", "mt_bench"] and cfg.selection.budget == 1000
        pairwise = cfg.benchmarks.pairwise
        assert list(pairwise.baselines) == [f"{cfg.dataset.name}-{b}" for b in ("full", "random", "longest",
                                                                              "alpagasus")] + ["lima"]
        assert pairwise.answers_dir.endswith(f"answers/{model}")
    else:  # a baseline answers every benchmark's questions; it names no baseline itself (pairwise is skipped)
        assert list(cfg.benchmarks) == ["pairwise", "mt_bench"] and not cfg.benchmarks.pairwise.baselines
    # Baselines register their answers under the names the TACOS runs judge against.
    names = {"baseline_random": "random", "baseline_longest": "longest", "baseline_full": "full",
             "baseline_alpagasus": "alpagasus", "baseline_ifd": "ifd"}
    if experiment in names:
        assert run_label_of(cfg.run_name) == f"{cfg.dataset.name}-{names[experiment]}"
    if experiment == "refined":
        assert stages.index("refine") < stages.index("train")


def test_smoke_is_the_whole_chain_on_cpu():
    cfg = _compose("experiment=smoke")
    assert list(cfg.stages) == [s for s in STAGE_ORDER if s != "refine"]
    assert cfg.model.name == "tiny" and cfg.selection.budget == 8 and cfg.dataset.limit > 8
    assert cfg.infer.base_answers and list(cfg.benchmarks.pairwise.baselines) == ["base"]
    assert list(cfg.benchmarks) == ["pairwise", "mt_bench"]
    assert OmegaConf.select(cfg, "llm._target_").endswith("LocalLlamaServer")


def test_run_identity_names_and_groups():
    cfg = _compose("experiment=tacos_alpaca", "model=mistral7b")
    group, name, tags = run_identity(cfg, "/x/outputs/multirun/2026-11-29/10-00-00")
    assert group == "sweep-2026-11-29-10-00-00" and name == f"{cfg.run_name}-mistral7b"
    assert run_label_of(cfg.run_name) == "alpaca-tacos"
    assert {"dataset:alpaca", "selection:tacos", "scorer:contrastive", "clustering:kmeans", "model:mistral7b"} <= set(tags)
    # A single selection-only run: grouped by its own name, no model in the name.
    cfg = _compose("stages=[data,clean,tag]")
    assert run_identity(cfg, None)[:2] == (cfg.run_name, cfg.run_name)
    cfg = _compose("logger.group=paper", "experiment=baseline_random")
    assert run_identity(cfg, "/x/a/b")[0] == "paper"


# -- run names ------------------------------------------------------------------------------------------------------
SWEEPS = [[f"scorer/judge={j}" for j in ("llm_text", "llm_digit", "guarded_llm", "likelihood_gain")],
          [f"scorer={s},clustering={c}" for s in ("contrastive", "single") for c in ("kmeans", "none")],
          [f"experiment=tacos_alpaca,guard={g}" for g in ("relevance", "none")],
          [f"experiment=baseline_random,selection.budget={b}" for b in (500, 1000)],
          [f"seed={k}" for k in (0, 1, 2)]]


@pytest.mark.parametrize("members", SWEEPS, ids=["scorer_judge", "ablation_2x2", "guard", "budget", "seed"])
def test_members_of_a_sweep_have_distinct_names_and_registry_entries(members, tmp_path):
    """Runs that differ in any selection setting (the scorer's judge, the guard, the budget, the seed...) get distinct
    run names, hence distinct W&B names, model_ids and answers registry entries; a run may not replace an entry that a
    run of another config made."""
    from tacos.answers.registry import RegistryConflict, names, register_run
    from tacos.stages.infer import registry_key

    cfgs = [_compose("model=mistral7b", "stages=[data,select,export,train,infer]", *m.split(",")) for m in members]
    for what in (lambda c: c.run_name, lambda c: run_identity(c, "/x/a/b")[1], lambda c: c.infer.model_id):
        values = [what(c) for c in cfgs]
        assert len(set(values)) == len(values), values
    assert all("$" not in c.run_name for c in cfgs)
    model_dir = tmp_path / "answers" / "mistral7b"
    stage_dir = tmp_path / "run" / "infer"
    (stage_dir / "model_answer" / "vicuna").mkdir(parents=True)
    (stage_dir / "model_answer" / "vicuna" / "a.jsonl").write_text("{}\n")
    manifest = {"stats": {"answer_files": {"vicuna": "model_answer/vicuna/a.jsonl"}}, "output_hash": "x"}
    for c in cfgs:
        register_run(model_dir, str(c.run_name), int(c.seed), stage_dir, manifest, registry_key(c))
        register_run(model_dir, str(c.run_name), int(c.seed), stage_dir, manifest, registry_key(c))  # a re-run
    assert len(names(model_dir)) == len(cfgs)
    other = _compose("model=mistral7b", "train.max_steps=5", *members[0].split(","))
    other_dir = tmp_path / "other_run" / "infer"  # another run (a re-run in the run dir that made it may replace it)
    shutil.copytree(stage_dir, other_dir)
    with pytest.raises(RegistryConflict, match="another config"):
        register_run(model_dir, str(other.run_name), int(other.seed), other_dir, manifest, registry_key(other))
    register_run(model_dir, str(other.run_name), int(other.seed), stage_dir, manifest, registry_key(other))


def test_a_baseline_is_found_by_its_label(tmp_path):
    from tacos.answers.registry import registered

    model_dir = tmp_path / "m"
    (model_dir / "alpaca-random-1a2b3c").mkdir(parents=True)
    (model_dir / "alpaca-random-1a2b3c-seed1").mkdir()
    assert registered(model_dir, "alpaca-random") == model_dir / "alpaca-random-1a2b3c"
    assert registered(model_dir, "alpaca-random-seed1") == model_dir / "alpaca-random-1a2b3c-seed1"
    assert registered(model_dir, "alpaca-longest") is None
    (model_dir / "alpaca-random-ffffff").mkdir()
    with pytest.raises(ValueError, match="name the one you mean in full"):
        registered(model_dir, "alpaca-random")


# -- the stage store -------------------------------------------------------------------------------------------------
def test_store_publish_materialize_and_links(tmp_path):
    store = StageStore(tmp_path / "store")
    done = tmp_path / "run" / "tag"
    done.mkdir(parents=True)
    (done / "tags.jsonl").write_text("x\n")
    (done / "manifest.json").write_text("{}")
    assert store.lookup("tag", "k1") is None
    store.publish("tag", "k1", done)
    stored = store.lookup("tag", "k1")
    assert stored is not None and (stored / "tags.jsonl").read_text() == "x\n"
    dest = tmp_path / "run2" / "tag"
    dest.parent.mkdir()
    store.materialize(stored, dest)
    assert (dest / "tags.jsonl").read_text() == "x\n"
    assert os.stat(dest / "tags.jsonl").st_ino == os.stat(stored / "tags.jsonl").st_ino  # hard link, no copy
    store.publish("tag", "k1", done)  # publishing a stored key again is a no-op
    assert not list((tmp_path / "store" / "tag").glob(".*partial"))


def test_store_lock_makes_a_second_job_wait(tmp_path):
    store = StageStore(tmp_path / "store")
    order = []

    def job(name: str, hold: float) -> None:
        with store.lock("score", "k"):
            order.append(f"{name} in")
            time.sleep(hold)
            order.append(f"{name} out")

    first = threading.Thread(target=job, args=("a", 0.5))
    first.start()
    time.sleep(0.1)
    second = threading.Thread(target=job, args=("b", 0.0))
    second.start()
    first.join()
    second.join()
    assert order == ["a in", "a out", "b in", "b out"]


def test_selection_is_computed_once_for_three_models(stub, tmp_path):
    """A model sweep over the selection stages: the first job computes, the other two reuse (no backend call). (The
    stages are named: choosing a model would add `train`.)"""
    sweep = tmp_path / "sweep"
    selection = ",".join(s for s in STAGE_ORDER[:STAGE_ORDER.index("export") + 1])
    out = run_cli(["-m", "model=tiny,llama2_7b,mistral7b", f"stages=[{selection}]", *stub_overrides(stub, tmp_path),
                   "dataset.limit=16",
                   "selection.budget=4", "clustering.k=4", "scorer.n_boot=20", f"hydra.sweep.dir={sweep}"])
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted(p for p in sweep.iterdir() if (p / "export" / "manifest.json").is_file())
    assert len(runs) == 3
    manifests = [{p.parent.name: json.loads(p.read_text()) for p in r.glob("*/manifest.json")} for r in runs]
    first, *others = manifests
    assert all("reused_from" not in m for m in first.values())
    assert first["tag"]["llm"]["calls"] == 16
    for m in others:
        assert all(v.get("reused_from") and v["llm"] == {} for v in m.values())
        assert m["export"]["output_hash"] == first["export"]["output_hash"]
    assert stub.count == first["tag"]["llm"]["calls"] + first["score"]["llm"]["calls"]


# -- forecasts -------------------------------------------------------------------------------------------------------
def test_paper_run_dry_run_forecasts_calls_and_gpu_hours(stub, tmp_path):
    run_dir = tmp_path / "d"
    out = run_cli([*stub_overrides(stub, tmp_path), "experiment=tacos_alpaca", "dataset=sample", "dataset.limit=12",
                   "model=mistral7b", "dry_run=true", f"hydra.run.dir={run_dir}"])
    assert out.returncode == 0, out.stderr[-3000:]
    plan = json.loads((run_dir / "dry_run.json").read_text())
    assert stub.count == 0
    assert plan["tag"]["calls"] == 12
    # 6 x 7.24e9 params x (1,000 rows x 400 tokens) x 15 epochs / (312e12 FLOP/s x 0.3) / 3600 = 0.774 GPU hours
    assert plan["train"]["gpu_hours"] == pytest.approx(0.774, abs=0.001)
    # Pairwise judging against the 5 registered-later baselines, both orders, plus MT-Bench (80 x 2 turns).
    n_pairwise = 2 * 5 * (180 + 252 + 218 + 80 + 300)
    # (identical requests — a question that two test sets share — are made once: forecast as cache hits)
    assert plan["judge"]["calls"] + plan["judge"]["cache_hits"] == n_pairwise + 160
    assert plan["judge"]["exact"] is False
    assert "gpu h" in out.stdout


def test_multirun_dry_run_prints_the_grid(stub, tmp_path):
    lima = tmp_path / "lima.json"
    lima.write_text(json.dumps([{"conversations": [{"from": "human", "value": f"q{i}"},
                                                   {"from": "gpt", "value": f"a{i}"}]} for i in range(3)]))
    env = {**os.environ, "PYTHON": str(Path(os.sys.executable)), "MODELS": "tiny,mistral7b", "ABLATION_MODELS": "tiny",
           "DATASETS": "sample", "ABLATION_DATASET": "sample", "SWEEP_ROOT": str(tmp_path / "grid"), "TACOS_LIMA_PATH": str(lima)}
    out = subprocess.run(["bash", str(REPO / "multirun.sh"), "--dry-run", *stub_overrides(stub, tmp_path, llm_judge=False),
                          "dataset.limit=8"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    assert stub.count == 0
    rows = (tmp_path / "grid" / "plan.csv").read_text().splitlines()
    # lima x 2 models, 5 baselines x 2, tacos x 2, 3 ablation/refined runs x 1, plus header and total
    assert len(rows) == 2 + 10 + 2 + 3 + 2, rows
    assert rows[0].startswith("run,llm_calls") and rows[-1].startswith("total")
    assert "gpu h" in out.stdout and re.search(r"sample_tacos/0_sample-tacos-[0-9a-f]{6}_tiny", out.stdout), \
        out.stdout[-3000:]


# -- the whole chain -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_selection_with_an_llm_judge_on_the_stub(stub, tmp_path):
    """experiment=smoke's selection stages with an LLM pairwise judge, on the stub (the whole chain, training and
    judging included, runs against the real local LLM in tests/test_real_llm_pipeline.py): the dry run's forecast of
    the tagging calls equals the calls made, and once the tags are known the scoring forecast is exact too."""
    run_dir = tmp_path / "run"
    args = ["experiment=smoke", *stub_overrides(stub, tmp_path), f"hydra.run.dir={run_dir}"]
    dry = run_cli([*args, "dry_run=true"])
    assert dry.returncode == 0, dry.stderr[-3000:]
    forecast = json.loads((run_dir / "dry_run.json").read_text())
    out = run_cli([*args, "stages=[data,clean,tag,normalize,cluster]"], timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    dry2 = run_cli([*args, "dry_run=true"])
    assert dry2.returncode == 0, dry2.stderr[-3000:]
    forecast2 = json.loads((run_dir / "dry_run.json").read_text())
    assert forecast2["score"]["exact"] and forecast2["judge"]["exact"] is False  # answers unknown before infer
    assert forecast["judge"]["calls"] == forecast2["judge"]["calls"] == 2 * 2 + 2  # 1 question x 2 sets x 2 orders + MT-Bench
    out = run_cli([*args, "stages=[data,clean,tag,normalize,cluster,score,select,export]"], timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    m = {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("*/manifest.json")}
    assert m["tag"]["llm"]["calls"] == forecast["tag"]["calls"] == 12
    assert m["score"]["llm"]["calls"] == forecast2["score"]["calls"] > 0
    assert m["select"]["counts"]["selected"] == 8


def test_multirun_checks_the_pool_files_before_any_job(tmp_path):
    env = {**os.environ, "DATASETS": "alpaca", "TACOS_ALPACA_PATH": str(tmp_path / "nope.json"),
           "TACOS_LIMA_PATH": str(tmp_path / "lima.json"), "SWEEP_ROOT": str(tmp_path / "grid")}
    out = subprocess.run(["bash", str(REPO / "multirun.sh")], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    assert "TACOS_ALPACA_PATH" in out.stderr and "TACOS_LIMA_PATH" in out.stderr
    assert not (tmp_path / "grid").exists()  # nothing started


def test_the_dry_run_flags_a_forecast_above_the_budget(tmp_path):
    """Project issue 21, item 6: the forecast is compared with budget.max_usd, and the line says where the run would
    stop and what to set; local compute is forecast in CPU-hours."""
    from tacos.local_compute import budget_check, budget_warning

    report = {"data": {"usd": 0.0}, "tag": {"usd": 6.61}, "score": {"usd": 5.52}, "judge": {"usd": 3.64},
              "total": {"usd": 15.77}}
    budget = budget_check(report, ["data", "tag", "score", "judge"], 5.0)
    assert budget_warning(budget) == ("forecast $15.77 > budget.max_usd=5: the run would stop during tag; "
                                      "set budget.max_usd=16")
    assert budget_check(report, ["data", "tag", "score", "judge"], 20.0)["over"] is False
    run_dir = tmp_path / "run"
    out = run_cli(["dataset.limit=8", "stages=[data,tag,normalize,cluster,score]", "llm=openai", "dry_run=true",
                   "budget.max_usd=0.0001", "logger=none", f"paths.output_dir={tmp_path / 'o'}",
                   f"hydra.run.dir={run_dir}"])
    assert out.returncode == 0, out.stderr[-3000:]
    plan = json.loads((run_dir / "dry_run.json").read_text())
    assert plan["budget"]["over"] and plan["budget"]["stops_during"] == "tag"
    assert "the run would stop during tag; set budget.max_usd=1" in out.stderr
    # the default scorer's likelihood passes and the relevance guard's embeddings run on this CPU
    assert plan["score"]["cpu_hours"] > 0 and "cpu h" in out.stdout


@pytest.mark.slow
def test_multirun_dry_run_on_a_fresh_clone(tmp_path):
    """No pool files, no LIMA file, hub offline: the dry run still forecasts the grid (pools at their known size from
    stand-in rows, marked estimate; LIMA's sweep left out with a note)."""
    env = {**os.environ, "PYTHON": str(Path(os.sys.executable)), "DATASETS": "alpaca", "MODELS": "mistral7b",
           "ABLATION_MODELS": "mistral7b", "TACOS_ALPACA_PATH": str(tmp_path / "nope.json"),
           "TACOS_LIMA_PATH": str(tmp_path / "lima.json"), "SWEEP_ROOT": str(tmp_path / "grid")}
    out = subprocess.run(["bash", str(REPO / "multirun.sh"), "--dry-run", "llm=openai", "logger=none",
                          "dataset.limit=20", f"paths.output_dir={tmp_path / 'o'}"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "lima: left out of this dry run" in out.stderr
    rows = (tmp_path / "grid" / "plan.csv").read_text().splitlines()
    assert len(rows) == 2 + 5 + 1 + 3, rows  # 5 baselines, TACOS, 3 ablation/refined runs, header and total
    assert rows[-1].endswith("estimate")
