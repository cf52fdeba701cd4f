"""W&B that compares, read back from offline runs (tests/wandb_records.py): the subset as a dataset artifact that the
training run uses (pool -> subset -> model -> answers), the selected rows as a table, what the subset prefers as
summary metrics, groups and job types, the report's figures; and no credential anywhere in what W&B keeps."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli, stub_overrides
from wandb_records import entries, read_runs

SMALL = ["dataset.limit=40", "selection.budget=6", "clustering.k=6", "scorer.n_boot=20"]
FAKE_ENV_KEY = "sk-" + "SHOULDNEVERAPPEAR" + "ANYWHERE123456"  # built at run time: no key-shaped literal in the source


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """Offline, with W&B's own folders (staging copies of artifacts, cache, settings) under tmp_path."""
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path / "wandb_dir"),
           "WANDB_DATA_DIR": str(tmp_path / "wandb_data"), "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
           "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def test_pipeline_run_logs_subset_artifact_table_and_preferences(stub, tmp_path, wandb_env):
    run_dir = tmp_path / "sweep" / "0"
    args = [a for a in stub_overrides(stub, tmp_path) if a != "logger=none"]
    out = run_cli([*args, *SMALL, "logger=wandb", "logger.group=ablation-grid", f"hydra.run.dir={run_dir}",
                   "stages=[data,clean,tag,normalize,cluster,score,select,export,report]"],
                  env={**wandb_env, "OPENAI_API_KEY": FAKE_ENV_KEY})
    assert out.returncode == 0, out.stderr[-3000:]
    main, export = read_runs(run_dir / "wandb")  # the pipeline's run, then the export step's
    assert main.group == export.group == "ablation-grid"
    assert main.job_type == "selection" and export.job_type == "export"
    assert export.name == f"{main.name}/export" and export.config["pipeline_run"]
    assert main.config["scorer.name"]  # the flat config went in
    assert main.logged_key("cluster/plots/cluster_sizes") and main.logged_key("export/contamination")

    # the selected rows, with why each was chosen
    table = main.table("select/selected_rows")
    assert table["columns"][:3] == ["id", "instruction", "response_preview"]
    assert {"cluster", "score", "reason"} <= set(table["columns"])
    selected = (run_dir / "select" / "selected.jsonl").read_text().splitlines()
    assert len(table["data"]) == len(selected) > 0
    assert all(len(row[2]) <= 201 for row in table["data"])  # a preview, not the whole response

    # what the subset prefers: in the manifest, the report and the run's summary
    prefers = json.loads((run_dir / "select" / "manifest.json").read_text())["stats"]["prefers"]
    assert prefers["mean_response_chars_pool"] > 0 and 0 <= prefers["markdown_share_pool"] <= 1
    assert prefers["scored_records"] > 0
    for key in ("mean_response_chars_selected", "mean_response_chars_pool", "markdown_share_selected"):
        assert main.summary[f"subset/{key}"] == prefers[key]
    assert "markdown_selected" in (run_dir / "report" / "report.md").read_text()
    assert main.logged_key("report/plots/win_tie_lose") and main.logged_key("report/plots/comparison")

    # lineage: the export step uses the pool (a checksummed reference, not uploaded) and logs the subset
    (pool,), (subset,) = export.used, export.logged
    assert pool.type == "dataset" and pool.name.startswith("pool-")
    assert entries(pool) == {"records.jsonl": (run_dir / "data" / "records.jsonl").resolve().as_uri()}
    assert subset.type == "dataset" and subset.name.startswith("subset-")
    files = entries(subset)
    export_stats = json.loads((run_dir / "export" / "manifest.json").read_text())["stats"]
    assert files.get(export_stats["file"]) == "" and "manifest.json" not in files  # stored, not referenced
    assert json.loads(subset.metadata)["subset_sha256"] == export_stats["subset_sha256"]
    assert main.summary["artifacts/dataset"] == subset.name

    kept = [p for p in [*(run_dir / "wandb").rglob("*"), *run_dir.rglob("*.json"), *run_dir.rglob("*.yaml")]
            if p.is_file()]
    assert not any(b"SHOULDNEVERAPPEAR" in p.read_bytes() for p in kept)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _manifest(folder: Path, stage: str, stats: dict, counts: dict | None = None) -> dict:
    m = {"stage": stage, "status": "complete", "stats": stats, "counts": counts or {}, "seconds": 0.1}
    _write(folder / "manifest.json", json.dumps(m))
    return m


def _toy_run_dir(run_dir: Path, tmp_path: Path) -> dict[str, dict]:
    """The folders the stages data ... infer leave, written by hand (the real ones: test above, test_train_tiny.py,
    test_infer.py)."""
    rows = [{"id": f"r{i}", "instruction": f"task {i}", "input": "", "output": ("- point\n" if i % 2 else "") + "x" * i}
            for i in range(1, 9)]
    _write(run_dir / "data" / "records.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    m = {"data": _manifest(run_dir / "data", "data", {}, {"records": 8})}
    chosen = [{**r, "selection": {"id": r["id"], "cluster": 0, "score": 1.0, "rank": 0, "reason": "top of cluster 0"}}
              for r in rows[-3:]]
    _write(run_dir / "select" / "selected.jsonl", "".join(json.dumps(r) + "\n" for r in chosen))
    m["select"] = _manifest(run_dir / "select", "select", {"prefers": {"mean_response_chars_selected": 7.0,
                                                                        "mean_response_chars_pool": 4.5}},
                            {"selected": 3})
    data_file = _write(run_dir / "export" / "toy.json", json.dumps([{"conversations": []}] * 3))
    _write(run_dir / "export" / "dataset_info.json", "{}")
    m["export"] = _manifest(run_dir / "export", "export", {"file": "toy.json", "subset_sha256": "abc"})
    weights = tmp_path / "train_output"
    _write(weights / "model.safetensors", "not really weights")
    _write(run_dir / "train" / "train_results.json", '{"train_loss": 1.5}\n')
    m["train"] = _manifest(run_dir / "train", "train", {"launched": True, "model": "tiny", "model_path": str(weights),
                                                        "dataset_file": str(data_file), "recipe_sha256": "r"})
    _write(run_dir / "infer" / "model_answer" / "koala" / "m.jsonl", '{"question_id": 1, "choices": []}\n')
    m["infer"] = _manifest(run_dir / "infer", "infer", {"model_id": "m", "model_path": str(weights)})
    return m


def test_lineage_pool_subset_model_answers_and_sweep_report(tmp_path, wandb_env):
    """The whole chain in one offline W&B project: the train step uses the very subset version the export step
    logged (same digest), the infer step uses the model the train step logged; `tacos report` logs its figures in
    the runs' group."""
    from tacos.cli import main as tacos
    from tacos.tracking import WandbLogger

    run_dir = tmp_path / "sweep" / "run"
    manifests = _toy_run_dir(run_dir, tmp_path)
    logger = WandbLogger(mode="offline")
    config = {"run_name": "toy-tacos", "model.name": "tiny", "dataset.name": "toy",
              "stages": json.dumps(["select", "export", "train", "infer"])}
    logger.start(config=config, run_dir=run_dir, name="toy-tacos-tiny", group="g1")
    for stage in ("select", "export", "train", "infer"):
        logger.log_stage(manifests[stage], run_dir)
    logger.finish()

    main, export, train, infer = read_runs(run_dir / "wandb")
    assert main.job_type == "evaluation" and [r.job_type for r in (export, train, infer)] == ["export", "train", "infer"]
    assert {r.group for r in (main, export, train, infer)} == {"g1"}
    assert main.table("select/selected_rows")["data"][0][-1] == "top of cluster 0"
    assert main.summary["subset/mean_response_chars_selected"] == 7.0
    (pool,), (subset,) = export.used, export.logged
    assert pool.name == "pool-toy" and set(entries(subset)) == {"toy.json", "dataset_info.json"}
    (used_subset,), (model,) = train.used, train.logged
    assert (used_subset.name, used_subset.digest) == (subset.name, subset.digest)  # one version: the chain links
    assert model.type == "model" and entries(model)["train_results.json"] == ""
    refs = {p: ref for p, ref in entries(model).items() if p.startswith("weights")}
    assert refs and all(ref.startswith("file://") for ref in refs.values())  # the weights: referenced, not uploaded
    (used_model,), (answers,) = infer.used, infer.logged
    assert (used_model.name, used_model.digest) == (model.name, model.digest)
    assert answers.type == "answers" and "koala/m.jsonl" in entries(answers)

    assert tacos(["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "rep")]) == 0  # auto: the run logged
    (report,) = read_runs(tmp_path / "rep" / "wandb")
    assert report.job_type == "report" and report.group == "g1"
    assert all(report.logged_key(f"report/{k}") for k in ("win_tie_lose", "comparison", "results", "summary"))
    assert (tmp_path / "rep" / "comparison.png").is_file() and (tmp_path / "rep" / "win_tie_lose.png").is_file()
