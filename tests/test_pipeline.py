"""The whole selection pipeline through run.py against the stub server: outputs, manifests, resume, cache,
determinism, ablations, dry run, budget, and clean errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli, stub_overrides

SMALL = ["dataset.limit=40", "selection.budget=6", "clustering.k=6", "scorer.n_boot=20"]


def manifests(run_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("*/manifest.json")}


def test_full_pipeline_outputs_and_resume(stub, tmp_path):
    run_dir = tmp_path / "run"
    args = [*stub_overrides(stub, tmp_path), *SMALL, f"hydra.run.dir={run_dir}"]
    out = run_cli(args)
    assert out.returncode == 0, out.stderr[-3000:]
    m = manifests(run_dir)
    assert set(m) == {"data", "clean", "tag", "normalize", "cluster", "score", "select", "export"}
    for name, man in m.items():
        assert man["status"] == "complete" and man["config_hash"] and "seconds" in man, name
    assert m["data"]["counts"]["records"] == 40
    assert m["tag"]["llm"]["calls"] == 40 and m["tag"]["counts"]["invalid"] == 0
    assert m["score"]["counts"]["judgments"] > 0 and "consistency" in m["score"]["stats"]
    kept = m["cluster"]["counts"]["kept_after_dedup"]
    assert m["select"]["counts"]["selected"] == min(6, kept)
    assert m["select"]["stats"]["budget_met"] == (kept >= 6)
    export = run_dir / "export"
    data = json.loads((export / m["export"]["stats"]["file"]).read_text())
    assert len(data) == min(6, kept) and data[0]["conversations"][0]["from"] == "human"
    assert data[0]["conversations"][0]["value"].startswith("Below is an instruction")
    info = json.loads((export / "dataset_info.json").read_text())
    assert info[m["export"]["stats"]["dataset_name"]]["formatting"] == "sharegpt"
    for row in (run_dir / "select" / "selected.jsonl").read_text().splitlines():
        sel = json.loads(row)["selection"]
        assert sel["reason"] and "rank" in sel
    assert (run_dir / "normalize" / "tag_map.jsonl").is_file() and (run_dir / "cluster" / "cluster_sizes.png").is_file()
    assert (export / "contamination.json").is_file()

    # Same run dir again: every stage is skipped (identical manifests), no backend request.
    before = stub.count
    again = run_cli(args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert stub.count == before
    assert "skipped" in again.stderr + again.stdout

    # A fresh run dir with the same config, stage sharing off: all LLM calls come from the cache, and the subset is
    # byte-identical.
    run2 = tmp_path / "run2"
    fresh = run_cli([*stub_overrides(stub, tmp_path), *SMALL, f"hydra.run.dir={run2}", "share_outputs=false"])
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert stub.count == before
    m2 = manifests(run2)
    assert m2["tag"]["llm"]["calls"] == 0 and m2["tag"]["llm"]["cache_hits"] == 40
    assert m2["export"]["stats"]["subset_sha256"] == m["export"]["stats"]["subset_sha256"]
    assert (run2 / "export" / m["export"]["stats"]["file"]).read_bytes() == (export / m["export"]["stats"]["file"]).read_bytes()

    # Sharing on (the default): every stage is copied from the store, not even the cache is asked.
    run3 = tmp_path / "run3"
    shared = run_cli([*stub_overrides(stub, tmp_path), *SMALL, f"hydra.run.dir={run3}"])
    assert shared.returncode == 0, shared.stderr[-2000:]
    m3 = manifests(run3)
    assert all(v["reused_from"] and v["llm"] == {} for v in m3.values())
    assert m3["tag"]["computed"]["llm"]["calls"] == 40
    assert m3["export"]["output_hash"] == m["export"]["output_hash"]
    assert (run3 / "export" / m["export"]["stats"]["file"]).read_bytes() == (export / m["export"]["stats"]["file"]).read_bytes()


def test_prompt_change_invalidates_only_its_calls(stub, tmp_path):
    base = [*stub_overrides(stub, tmp_path), *SMALL]
    assert run_cli([*base, f"hydra.run.dir={tmp_path / 'a'}"]).returncode == 0
    prompt = tmp_path / "score_pair_edited.txt"
    src = Path(__file__).resolve().parents[1] / "tacos" / "prompts" / "score_pair.txt"
    prompt.write_text(src.read_text() + "\nBe extra strict.\n")
    out = run_cli([*base, f"hydra.run.dir={tmp_path / 'b'}", f"scorer.judge.prompt={prompt}"])
    assert out.returncode == 0, out.stderr[-2000:]
    m = manifests(tmp_path / "b")
    assert m["tag"]["llm"].get("calls", 0) == 0  # tagging prompts unchanged: reused (or all cached)
    assert m["score"]["llm"]["calls"] == 2 * m["score"]["counts"]["pairs"] > 0  # every scoring call re-issued


def test_ablation_grid_multirun(stub, tmp_path):
    sweep = tmp_path / "sweep"
    small = [a for a in SMALL if not a.startswith(("clustering.", "scorer."))]  # not every option has these keys
    args = ["-m", "scorer=contrastive_text,single", "clustering=kmeans,none",
            *stub_overrides(stub, tmp_path, llm_judge=False), *small,
            f"hydra.sweep.dir={sweep}"]
    out = run_cli(args)
    assert out.returncode == 0, out.stderr[-3000:]
    hashes = {}
    for run_dir in sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "export").is_dir()):
        m = manifests(run_dir)
        hashes[run_dir.name.split("_", 1)[1]] = m["export"]["stats"]["subset_sha256"]
    assert len(hashes) == 4 and len(set(hashes.values())) == 4, hashes
    # Same seed reproduces the same subsets: both ablations at once, recomputed (the default's own determinism:
    # test_full_pipeline_outputs_and_resume).
    out2 = run_cli(["scorer=single", "clustering=none", *args[3:-1], f"hydra.run.dir={tmp_path / 'again'}",
                    "share_outputs=false"])
    assert out2.returncode == 0, out2.stderr[-3000:]
    again = manifests(tmp_path / "again")["export"]["stats"]["subset_sha256"]
    assert again == next(h for name, h in hashes.items() if "single" in name and "none" in name), (again, hashes)


def test_dry_run_calls_nothing(stub, tmp_path):
    out = run_cli([*stub_overrides(stub, tmp_path), *SMALL, "dry_run=true", f"hydra.run.dir={tmp_path / 'd'}"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert stub.count == 0
    plan = json.loads((tmp_path / "d" / "dry_run.json").read_text())
    assert plan["tag"]["calls"] == 40 and plan["tag"]["exact"] is True
    assert plan["score"]["calls"] > 0 and "Dry run" in out.stdout
    assert not list((tmp_path / "d").glob("*/manifest.json"))


def test_budget_stops_cleanly(stub, tmp_path):
    run_dir = tmp_path / "b"
    out = run_cli([*stub_overrides(stub, tmp_path), *SMALL, "llm.price_in_per_mtok=1000", "llm.price_out_per_mtok=1000",
                   "budget.max_usd=0.5", f"hydra.run.dir={run_dir}"])
    assert out.returncode != 0
    assert "BudgetExceeded" in out.stderr
    assert not (run_dir / "tag" / "manifest.json").exists()
    assert stub.count < 40


def test_missing_input_stage_is_a_clear_error(stub, tmp_path):
    out = run_cli([*stub_overrides(stub, tmp_path), "stages=[normalize]", f"hydra.run.dir={tmp_path / 'x'}"])
    assert out.returncode == 2
    assert "needs the output of stage 'tag'" in out.stderr


def test_bad_inputs_exit_nonzero_with_clear_messages(tmp_path):
    missing = run_cli(["dataset=jsonl", f"dataset.path={tmp_path / 'nope.jsonl'}", "logger=none",
                       f"hydra.run.dir={tmp_path / 'm'}"])
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": \n')
    broken = run_cli(["dataset=jsonl", f"dataset.path={bad}", "logger=none", f"hydra.run.dir={tmp_path / 'b'}",
                      "stages=[data]"])
    assert broken.returncode == 2 and "bad.jsonl" in broken.stderr and "line 2" in broken.stderr.lower()
    assert not (tmp_path / "b" / "data" / "manifest.json").exists()
    unknown = run_cli(["dataset=does_not_exist", f"hydra.run.dir={tmp_path / 'u'}"])
    assert unknown.returncode != 0 and "does_not_exist" in unknown.stderr
    stage = run_cli(["stages=[data,clean,teleport]", "logger=none", f"hydra.run.dir={tmp_path / 's'}"])
    assert stage.returncode == 2 and "teleport" in stage.stderr


SELECTION_AND_REFINE = "stages=[data,clean,tag,normalize,cluster,score,select,export,refine]"


@pytest.mark.parametrize("override,key", [
    ("normalize.alpha=-1", "normalize.alpha"), ("normalize.order=random", "normalize.order"),
    ("normalize.association.min_confidence=0", "normalize.association.min_confidence"),
    ("export.prompt_wrapper=chatml", "export.prompt_wrapper"),
    ("export.write_alpaca_json=3", "export.write_alpaca_json"),
    ("refine.top_p=0", "refine.top_p"), ("refine.max_tokens=0", "refine.max_tokens"),
    ("report.contamination_ngram=0", "report.contamination_ngram"),
    ("report.contamination_threshold=1.5", "report.contamination_threshold")])
def test_stage_sections_are_validated_before_any_stage(override, key):
    """normalize, export (+ report, its contamination check) and refine build typed specs from their sections; the
    runner validates them with the other components: a bad value is an error naming its key."""
    from test_configs import compose_cfg
    from tacos.pipeline import validate

    assert validate(compose_cfg([SELECTION_AND_REFINE]))
    with pytest.raises(ValueError, match=rf"^{key} must"):
        validate(compose_cfg([SELECTION_AND_REFINE, override]))


def test_a_bad_section_value_stops_the_run_before_the_first_stage(tmp_path):
    out = run_cli(["stages=[data,clean,tag,normalize]", "normalize.order=random", "logger=none",
                   f"paths.output_dir={tmp_path / 'outputs'}", f"hydra.run.dir={tmp_path / 'r'}"])
    assert out.returncode == 2 and "normalize.order must be one of" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "r" / "data" / "manifest.json").exists()


# Fake keys, built at run time so no key-shaped literal sits in the source.
FAKE_KEY = "sk-" + "THISISNOTAREALKEY" + "1234567890"


def test_secret_in_config_is_refused_and_scrubbed(tmp_path):
    run_dir = tmp_path / "s"
    out = run_cli([f"+llm.api_key={FAKE_KEY}", "logger=none", f"hydra.run.dir={run_dir}"])
    assert out.returncode == 2 and "credentials" in out.stderr
    for f in (run_dir / ".hydra").glob("*.yaml"):
        assert "sk-THISISNOTAREALKEY" not in f.read_text()


# The W&B run of a pipeline (offline, without secrets, artifacts, tables): tests/test_wandb_lineage.py
