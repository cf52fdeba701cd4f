"""Hydra callbacks (conf/config.yaml `hydra.callbacks`) and the job status file they read.

They run in the process that composes the config, before Hydra writes anything (hydra/_internal/hydra.py):
on_run_start comes before run_job creates the run dir and .hydra/*.yaml; on_multirun_start before the sweeper
creates the sweep dir and multirun.yaml, and before any launcher starts, pickles (submitit) or ships a job.

- RefuseSecrets: a credential in the config or in an override ends the command there, with nothing written.
- SweepReport: every job of a sweep leaves <job dir>/job_status.json (run.py writes it, also from other processes:
  joblib, submitit, Ray); when the sweep ends the LLM spend of its jobs (each job dir's llm_spend.json) is
  printed, the failed jobs are listed and the command exits non-zero.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from tacos.config import config_secrets, redact_overrides, to_container
from tacos.llm.calling.ledger import SPEND_FILE, read_spend

STATUS_FILE = "job_status.json"
SWEEP_FAILED = 1  # exit status of a sweep with a failed job (a single run exits with its own, 2 for errors)


def credentials_message(entries: list[str]) -> str:
    return (f"config entries {entries} hold credentials; keys are read from environment variables only "
            f"(e.g. OPENAI_API_KEY, named by llm.api_key_env). Nothing was run.")


class RefuseSecrets(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._refuse(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._refuse(config)

    @staticmethod
    def _refuse(config: DictConfig) -> None:
        # A sweep's config is composed without its swept values (the sweeper applies them per job): the override
        # strings, and the sweeper's own `params`, are checked as written.
        overrides = [str(o) for o in config.hydra.overrides.task]
        params = OmegaConf.select(config, "hydra.sweeper.params") or {}
        overrides += [f"{k}={v}" for k, v in params.items()]
        task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        try:
            container = to_container(task)
        except Exception:  # an interpolation that only resolves inside the job: check the values as written
            container = OmegaConf.to_container(task, resolve=False)
        hydra_node = OmegaConf.to_container(OmegaConf.masked_copy(config.hydra, ["job", "launcher", "sweeper"]),
                                            resolve=False)  # hydra.job.env_set, a launcher's setup lines, ...
        entries = config_secrets(container, overrides) + [f"hydra.{e}" for e in config_secrets(hydra_node, [])]
        if entries:
            print(f"error: {credentials_message(entries)}", file=sys.stderr)
            sys.exit(2)


def write_job_status(run_dir: Path, job: int, overrides: list[str], error: str | None = None,
                     error_log: Path | None = None) -> None:
    """<run_dir>/job_status.json: how one job of a sweep ended, for SweepReport (written last, so its presence
    means the job ended inside run.py)."""
    status = {"status": "failed" if error else "ok", "job": job, "overrides": redact_overrides(overrides),
              "run_dir": str(run_dir), "error": error, "error_log": str(error_log) if error_log else None}
    (run_dir / STATUS_FILE).write_text(json.dumps(status, indent=1) + "\n", encoding="utf-8")


def _status_files(sweep_dir: Path) -> list[Path]:
    # a job dir is <sweep>/<subdir>, or one level deeper when the subdir has a slash (one dir per node)
    return sorted([*sweep_dir.glob(f"*/{STATUS_FILE}"), *sweep_dir.glob(f"*/*/{STATUS_FILE}")])


def _job_dirs(sweep_dir: Path, since: float) -> list[Path]:
    """Job dirs whose .hydra/ Hydra wrote after `since`: this sweep's jobs, also those that left no status."""
    found = [*sweep_dir.glob("*/.hydra/overrides.yaml"), *sweep_dir.glob("*/*/.hydra/overrides.yaml")]
    return sorted(p.parent.parent for p in found if p.stat().st_mtime >= since)


def spend_line(job_dirs: list[Path]) -> str | None:
    """What the jobs spent on LLM calls, from each job dir's spend record; None when none made a paid call."""
    spent = {}
    for d in job_dirs:
        if (d / SPEND_FILE).is_file():
            try:
                spent[d] = read_spend(d / SPEND_FILE)["spent_usd"]
            except ValueError as e:
                print(f"warning: {e}", file=sys.stderr)
    if not spent:
        return None
    top = max(spent, key=spent.get)
    return (f"LLM spend of the sweep: ${sum(spent.values()):.4f} in {len(spent)} of {len(job_dirs)} jobs "
            f"(most: ${spent[top]:.4f} in {top}; budget.max_usd caps each job's run dir)")


class SweepReport(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        self.started = time.time() - 5.0  # slack for a shared filesystem's clock
        for stale in _status_files(self.sweep_dir):  # a sweep dir used again: only this sweep's jobs count
            stale.unlink()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        statuses = [json.loads(p.read_text(encoding="utf-8")) for p in _status_files(self.sweep_dir)]
        reported = {Path(s["run_dir"]).absolute() for s in statuses}
        job_dirs = _job_dirs(self.sweep_dir, self.started)
        silent = [d for d in job_dirs if d.absolute() not in reported]
        spend = spend_line(sorted({d.absolute() for d in job_dirs} | reported))
        if spend:
            print(spend, flush=True)
        failed = sorted((s for s in statuses if s["status"] != "ok"), key=lambda s: s["job"])
        if not failed and not silent:
            return
        common = set.intersection(*(set(s["overrides"]) for s in statuses)) if len(statuses) > 1 else set()
        lines = [f"error: {len(failed) + len(silent)} of {len(statuses) + len(silent)} jobs of the sweep "
                 f"{self.sweep_dir} failed:"]
        for s in failed:
            varying = " ".join(o for o in s["overrides"] if o not in common)
            error = (s["error"] or "").splitlines()[0] if s["error"] else "failed"
            lines.append(f"  job {s['job']} [{varying}]: {error}")
            lines.append(f"      run dir: {s['run_dir']}" + (f"  traceback: {s['error_log']}" if s["error_log"] else ""))
        for d in silent:
            lines.append(f"  {d}: ended without a status (killed, or crashed before run.py could record it)")
        print("\n".join(lines), file=sys.stderr, flush=True)
        sys.exit(SWEEP_FAILED)
