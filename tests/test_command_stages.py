"""Project issue 21, items 1 and 5: a command does what it names (model=X trains, judge=X answers and judges, a choice
no stage uses is named), and a run ends with summary.md / summary.json and no HTTP request lines at INFO."""
from __future__ import annotations

import json
import logging

import pytest
from conftest import run_cli, stub_overrides

from tacos.command import stages_for_command, unused_choices
from tacos.stages import STAGE_ORDER

SELECTION = [s for s in STAGE_ORDER if STAGE_ORDER.index(s) <= STAGE_ORDER.index("export") and s != "refine"]


@pytest.mark.parametrize("overrides, added", [
    ([], []),
    (["dataset=alpaca", "dataset.limit=3"], []),
    (["model=mistral7b"], ["train"]),
    (["dataset=alpaca", "model=mistral7b"], ["train"]),
    (["judge=text"], ["train", "infer", "judge", "report"]),
    (["benchmarks=paper"], ["train", "infer", "judge", "report"]),
    (["+benchmark@benchmarks.alpaca_eval2=alpaca_eval2"], ["train", "infer", "judge", "report"]),
    (["model=mistral7b", "stages=[data,tag]"], None),        # explicit stages win
    (["experiment=tacos_alpaca", "model=mistral7b"], None),  # an experiment sets its own stages
    (["model.name=x"], []),                                  # a setting is not a choice of model
])
def test_stages_follow_the_command(overrides, added):
    stages = stages_for_command(SELECTION, overrides, STAGE_ORDER)
    if added is None:
        assert stages == SELECTION
    else:
        assert stages == SELECTION + added


def test_a_choice_no_stage_uses_is_named_in_one_line():
    line = unused_choices(SELECTION, ["model=mistral7b", "stages=[data,tag]", "dataset=alpaca"], STAGE_ORDER)
    assert line == "model=mistral7b is not used: stages end at export (add train to stages)"
    line = unused_choices(["data", "tag"], ["judge=paper", "scorer/judge=llm_text"], STAGE_ORDER)
    assert "judge=paper is not used" in line and "scorer/judge=llm_text is not used" in line and "\n" not in line
    assert unused_choices(SELECTION + ["train"], ["model=mistral7b"], STAGE_ORDER) is None


def test_http_request_lines_are_debug(caplog):
    from tacos.llm.calling.client import HTTP_LOGGERS  # importing the client demotes them

    caplog.set_level(logging.INFO)
    for name in HTTP_LOGGERS:
        logging.getLogger(name).info('HTTP Request: POST http://x/v1/chat/completions "HTTP/1.1 200 OK"')
    assert not [r for r in caplog.records if "HTTP Request" in r.getMessage()]
    logging.getLogger("httpx").warning("a real problem")
    assert [r.levelname for r in caplog.records] == ["WARNING"]


@pytest.mark.slow
def test_choosing_a_model_selects_then_trains_it(stub, tmp_path):
    """`python run.py dataset=... model=mistral7b` on a CPU machine: the subset is selected and saved, then the train
    stage stops with its clear message (no GPU here, or no train extra); summary.md says so; no HTTP lines."""
    run_dir = tmp_path / "run"
    out = run_cli([*stub_overrides(stub, tmp_path), "dataset=sample", "model=mistral7b", "dataset.limit=6",
                   "clustering.k=2", "selection.budget=3", f"hydra.run.dir={run_dir}"], timeout=600)
    assert out.returncode == 2, out.stderr[-3000:]
    assert (run_dir / "export" / "manifest.json").is_file()  # the subset is saved
    error = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and ("CUDA GPU" in error[0] or "train` extra" in error[0]), error
    assert "HTTP Request" not in out.stdout + out.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    outcomes = {s["stage"]: s["outcome"] for s in summary["stages"]}
    assert outcomes["export"] == "ran" and outcomes["train"] == "failed" and summary["status"] == "failed"
    assert summary["run_name"].startswith("sample-tacos-") and "$" not in summary["run_name"]
    assert summary["selection"]["select"]["selected"] >= 1 and summary["selection"]["top_exclusion_reasons"]
    md = (run_dir / "summary.md").read_text()
    assert "## What was selected and why" in md and "| train | FAILED |" in md and "gate" in md
