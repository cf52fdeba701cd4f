"""The TACOS application: the Hydra main behind `python run.py` and `tacos run` (the same command).

    python run.py                                   # embedded default: bundled sample pool, local LLM
    python run.py dataset=jsonl dataset.path=F      # your pool
    python run.py stages=[data,clean,tag,normalize] # a subset of stages
    python run.py -m scorer=contrastive,single clustering=kmeans,none   # the ablation grid
    python run.py dry_run=true                      # forecast LLM calls / tokens / cost, call nothing

It composes the config (conf/ of the checkout, or the copy an installed wheel carries: tacos.paths.CONFIG_PATH), runs
the selected stages (tacos.pipeline) and owns the W&B run; nothing else. It lives in the package so that an installed
`tacos run` works outside the checkout; run.py is a thin wrapper around it.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict
from omegaconf.errors import MissingMandatoryValue

from tacos.config import (config_secrets, flatten, override_secret_strings, redact, scrub_file, secret_strings,
                          to_container)
from tacos.paths import CONFIG_PATH

log = logging.getLogger("tacos")
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


class JobFailed(Exception):
    """A run that ends with one clear line; an unexpected error's traceback is in error_log."""

    def __init__(self, message: str, code: int = 2, error_log: Path | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.error_log = message, code, error_log

    def line(self) -> str:
        return f"{self.message}  (traceback: {self.error_log})" if self.error_log else self.message


def _sigterm(signum, frame):  # turn SIGTERM into SystemExit so `finally` blocks stop the local server
    raise SystemExit(128 + signum)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from tacos.hydra_callbacks import write_job_status

    signal.signal(signal.SIGTERM, _sigterm)
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweep_dir = Path(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None
    overrides = [str(o) for o in hydra_cfg.overrides.task]
    try:
        result = _run(cfg, run_dir, sweep_dir, overrides)
    except JobFailed as e:
        log.error(e.line())
        print(f"error: {e.line()}", file=sys.stderr)
        if e.code == 130:  # Ctrl-C ends the run (and a whole sweep) now
            _exit_now(e.code)
        if sweep_dir is None:
            sys.exit(e.code)
        # One failed job does not end the sweep (a SystemExit would: Hydra's launchers catch Exception only);
        # tacos.hydra_callbacks.SweepReport lists it when the sweep ends and exits non-zero.
        write_job_status(run_dir, hydra_cfg.job.num, overrides, error=e.message, error_log=e.error_log)
        return
    if sweep_dir is not None:
        write_job_status(run_dir, hydra_cfg.job.num, overrides)
    _summary(result, run_dir, bool(cfg.dry_run))


def _run(cfg: DictConfig, run_dir: Path, sweep_dir: Path | None, overrides: list[str]) -> dict:
    """The job: config checks, W&B run, pipeline. Every failure is raised as JobFailed."""
    from hydra.utils import instantiate

    from tacos.hydra_callbacks import credentials_message
    from tacos.pipeline import Pipeline
    from tacos.tracking import NullLogger, run_identity

    try:
        container = to_container(cfg)
    except MissingMandatoryValue as e:
        raise JobFailed(f"a required config value is missing: {e.full_key} (set it on the command line, e.g. "
                        f"python run.py dataset=jsonl dataset.path=FILE)") from None
    secrets = config_secrets(container, overrides)
    if secrets:  # hydra.callbacks' RefuseSecrets stops these before Hydra writes; if it was bypassed, scrub
        found = secret_strings(container) + override_secret_strings(overrides)
        for f in [*(run_dir / ".hydra").glob("*.yaml"), *([sweep_dir / "multirun.yaml"] if sweep_dir else [])]:
            scrub_file(f, found)
        raise JobFailed(credentials_message(secrets))
    _follow_command(cfg, overrides)
    if cfg.offline:
        for var in OFFLINE_VARS:
            os.environ.setdefault(var, "1")

    logger = NullLogger()
    ok = False
    try:
        group, name, tags = run_identity(cfg, str(sweep_dir) if sweep_dir else None)
        if "group" in cfg.logger:
            with open_dict(cfg):  # the train stage's own W&B run joins the same group
                cfg.logger.group = group
        logger = NullLogger() if cfg.dry_run else instantiate(cfg.logger)
        pipeline = Pipeline(cfg, run_dir, logger)  # validates every component before anything starts
        logger.start(config=flatten(redact(container)), run_dir=run_dir, name=name, group=group, tags=tags)
        result = pipeline.run()
        ok = True
        return result
    except KeyboardInterrupt:
        raise JobFailed("interrupted; finished stages and answered LLM calls are kept (re-run to resume)",
                        code=130) from None
    except Exception as e:  # one clean line for expected errors; the traceback goes to <run_dir>/error.log
        import traceback

        error_log: Path | None = run_dir / "error.log"
        try:
            error_log.write_text(traceback.format_exc(), encoding="utf-8")
        except OSError:  # the disk may be full: the message must still come out
            error_log = None
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or not _expected(e):
            log.exception("run failed")
        raise JobFailed(_message(e, run_dir), error_log=error_log) from None
    finally:
        logger.finish(ok=ok)


def _follow_command(cfg: DictConfig, overrides: list[str]) -> None:
    """The stages follow what the command names (tacos.config.stages_for_command): model=X adds train, judge=X or
    benchmarks=X adds train, infer, judge, report; a group chosen but used by no stage is named in one line."""
    from tacos.command import ASKS_FOR, chosen_groups, stages_for_command, unused_choices
    from tacos.pipeline import STAGE_ORDER

    stages = stages_for_command(list(cfg.stages), overrides, STAGE_ORDER)
    if stages != list(cfg.stages):
        asking = [o for g, o in chosen_groups(overrides).items() if g in ASKS_FOR]
        log.info("stages: %s (%s adds %s; stages=[...] sets them)", ",".join(stages), " ".join(asking),
                 ",".join(s for s in stages if s not in cfg.stages))
        with open_dict(cfg):
            cfg.stages = stages
    unused = unused_choices(stages, overrides, STAGE_ORDER)
    if unused:
        log.warning(unused)


def _exit_now(code: int) -> None:
    """After Ctrl-C: the servers are stopped and the W&B run is closed (the `finally` blocks ran), and every answered
    LLM call is already committed to the cache. What may be left are worker threads blocked on an HTTP request to a
    remote endpoint (up to client.timeout); the interpreter would wait for them at exit, so do not wait."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _disk_full(e: BaseException) -> OSError | None:
    """The no-space (or quota) error behind `e`, if that is what went wrong."""
    from tacos.records import is_disk_full

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if is_disk_full(e):
            return e
        e = e.__cause__ or e.__context__
    return None


def _message(e: Exception, run_dir: Path) -> str:
    """The one line a failed run ends with."""
    from tacos.records import DiskFull

    full = _disk_full(e)
    if isinstance(full, DiskFull):
        return str(full)
    if full is not None:  # raised where nobody named the file (a write or fsync inside a library)
        return f"disk full while writing {full.filename or f'in {run_dir}'}: free space or set paths.output_dir"
    return f"{type(e).__name__}: {e}"


def _expected(e: Exception) -> bool:
    from tacos.stage import StageError

    names = {"DataError", "BudgetExceeded", "StageError", "FileNotFoundError", "ValueError", "RuntimeError",
             "LLMUnavailable", "LLMCallsFailed", "CacheError", "DiskFull"}
    return isinstance(e, StageError) or type(e).__name__ in names or _disk_full(e) is not None


def _summary(result: dict, run_dir: Path, dry_run: bool) -> None:
    if dry_run:
        plan = result["dry_run"]
        print(f"\nDry run (nothing was called) — forecast per stage, written to {run_dir / 'dry_run.json'}")
        from tacos.local_compute import budget_warning

        print(f"{'stage':<10} {'calls':>7} {'cached':>7} {'in tok':>9} {'out tok':>9} {'usd':>9} {'gpu h':>8} "
              f"{'cpu h':>8}  exact")
        for name, p in plan.items():
            if name == "budget":
                continue
            exact = "reused" if p.get("reused") else ("yes" if p.get("exact", True) else "estimate")
            print(f"{name:<10} {p.get('calls', 0):>7} {p.get('cache_hits', 0):>7} {p.get('prompt_tokens', 0):>9} "
                  f"{p.get('completion_tokens', 0):>9} {p.get('usd', 0.0):>9.4f} {p.get('gpu_hours', 0.0):>8.2f} "
                  f"{p.get('cpu_hours', 0.0):>8.2f}  {exact}")
        print("cpu h: local compute (embedded LLM server calls, likelihood passes, embeddings) from measured seconds "
              "per pass (tacos/local_compute.py)")
        warning = budget_warning(plan.get("budget"))
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        return
    import json

    from tacos.summary import SUMMARY_MD, stage_table

    print(f"\nTACOS run dir: {run_dir}")
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        print(stage_table(summary))
        print(f"summary: {run_dir / SUMMARY_MD}")
    except (OSError, ValueError):
        pass
    export = result.get("export")
    if export:
        print(f"subset: {run_dir / 'export' / export['stats']['file']}  sha256 {export['stats']['subset_sha256'][:16]}")
    prefers = (result.get("select") or {}).get("stats", {}).get("prefers")
    if prefers:  # what the subset prefers (tacos.method.subset_stats): length and formatting pass many judges
        print(f"subset vs pool: {prefers.get('described', '')}")
    spend = run_dir / "llm_spend.json"
    if spend.is_file():
        from tacos.llm.calling.ledger import read_spend

        print(f"LLM spend in this run dir (all processes so far): ${read_spend(spend)['spent_usd']:.4f}")
    for name, m in result.items():  # the gate (tacos.judges.gate): say it last, where it is read
        gate = m.get("gate") or {}
        if gate.get("judge_informative") is False:
            print(f"\nwarning: {name}: the judge {m['stats'].get('judge_name') or ''} is not shown to be informative, "
                  f"so these {'scores' if name == 'score' else 'results'} may not mean what they seem:", file=sys.stderr)
            for reason in gate.get("judge_gate_reasons", []):
                print(f"  - {reason}", file=sys.stderr)
        elif gate.get("judge_informative"):
            print(f"{name}: the judge passed the gate ("
                  + ", ".join(f"{s} {_measured_value(v):.2f}" for s, v in gate["judge_measured"].items())
                  + ")")


def _measured_value(entry: dict) -> float:
    """The number a gate rule read (its metric: agreement over all items, AUC or Spearman)."""
    return next((entry[k] for k in ("agreement_all", "auc", "spearman", "agreement") if entry.get(k) is not None), 0.0)
