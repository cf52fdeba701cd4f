"""One failing job does not end a sweep: every job runs, the failed ones are listed at the end (job number,
overrides, run dir, one-line error, error.log) and the sweep exits non-zero, on the in-process basic launcher and on
joblib (worker processes: the summary is read from each job's job_status.json). multirun.sh goes on to its next
sweep after a failed one and exits non-zero with a summary."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_cli

LAUNCHERS = {"basic": [], "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_failing_job_does_not_end_the_sweep(launcher, tmp_path):
    if launcher == "joblib":
        pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    out = run_cli(["-m", *LAUNCHERS[launcher], "stages=[data]", "logger=none", "dataset.limit=5,-1,6",
                   f"paths.output_dir={tmp_path / 'outputs'}", f"hydra.sweep.dir={sweep}",
                   "hydra.sweep.subdir=${hydra.job.num}"])
    assert out.returncode == 1, out.stderr[-3000:]
    # The jobs after the failed one ran.
    assert (sweep / "0" / "data" / "manifest.json").is_file() and (sweep / "2" / "data" / "manifest.json").is_file()
    assert not (sweep / "1" / "data" / "manifest.json").exists()
    statuses = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/job_status.json")}
    assert {k: v["status"] for k, v in statuses.items()} == {"0": "ok", "1": "failed", "2": "ok"}
    # The summary at the end names the failed job, what it was, its error in one line and its traceback file.
    head, _, summary = out.stderr.partition("1 of 3 jobs of the sweep")
    assert summary, out.stderr[-3000:]
    assert "job 1" in summary and "dataset.limit=-1" in summary and "dataset.limit=5" not in summary
    assert "DataError" in summary and "dataset.limit must be a positive number" in summary
    assert str(sweep / "1" / "error.log") in summary and (sweep / "1" / "error.log").is_file()
    assert "job 0" not in summary and "job 2" not in summary


def test_a_single_run_still_fails_with_one_line(tmp_path):
    out = run_cli(["stages=[data]", "logger=none", "dataset.limit=-1", f"paths.output_dir={tmp_path / 'outputs'}",
                   f"hydra.run.dir={tmp_path / 'run'}"])
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "DataError" in errors[0] and "error.log" in errors[0]
    assert "Traceback" not in out.stderr and not (tmp_path / "run" / "job_status.json").exists()


def test_a_sweep_that_succeeds_exits_zero(tmp_path):
    sweep = tmp_path / "sweep"
    out = run_cli(["-m", "stages=[data]", "logger=none", "dataset.limit=4,5", f"paths.output_dir={tmp_path / 'o'}",
                   f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "failed" not in out.stderr
    assert sorted(p.parent.name for p in sweep.glob("*/job_status.json")) == ["0", "1"]


FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python: records its arguments; the run.py sweep whose sweep dir ends in /$FAIL_SWEEP fails.
echo "$*" >> "$CALLS"
for a in "$@"; do
  case "$a" in hydra.sweep.dir=*/"$FAIL_SWEEP") echo "error: job 0 broke" >&2; exit 1 ;; esac
done
exit 0
"""


def test_multirun_sh_goes_on_after_a_failed_sweep(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "PYTHON": str(fake), "CALLS": str(calls), "FAIL_SWEEP": "sample_baselines",
           "DATASETS": "sample", "ABLATION_DATASET": "sample", "MODELS": "tiny", "ABLATION_MODELS": "tiny",
           "TACOS_LIMA_PATH": str(REPO / "data" / "sample" / "alpaca_tiny.json"), "SWEEP_ROOT": str(tmp_path / "g")}
    out = subprocess.run(["bash", str(REPO / "multirun.sh"), "--dry-run"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 1, out.stdout + out.stderr
    sweeps = [line.split("hydra.sweep.dir=")[1].split()[0].rsplit("/", 1)[1] for line in calls.read_text().splitlines()
              if "hydra.sweep.dir=" in line]
    assert sweeps == ["lima", "sample_baselines", "sample_tacos", "sample_ablations"]  # the rest ran
    assert "-m tacos.cli plan" in calls.read_text()  # and the grid's forecast table
    summary = out.stderr.rsplit("error:", 1)[1]
    assert "1 of 4 sweeps failed" in summary and "sample_baselines" in summary and "sample_tacos" not in summary
    assert str(Path(env["SWEEP_ROOT"]) / "sample_baselines") in summary
