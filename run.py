#!/usr/bin/env python
"""TACOS — the one entry point.

    python run.py                                   # embedded default: bundled sample pool, local LLM
    python run.py dataset=jsonl dataset.path=F      # your pool
    python run.py stages=[data,tag,normalize]       # a subset of stages
    python run.py -m scorer=contrastive,single clustering=kmeans,none   # the ablation grid
    python run.py dry_run=true                      # forecast LLM calls / tokens / cost, call nothing

run.py composes the config, runs the selected stages (tacos.pipeline) and owns the W&B run; nothing else.
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

from tacos.config import find_secrets, flatten, redact, scrub_file, to_container

log = logging.getLogger("tacos")
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def _sigterm(signum, frame):  # turn SIGTERM into SystemExit so `finally` blocks stop the local server
    raise SystemExit(128 + signum)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from hydra.utils import instantiate

    from tacos.pipeline import Pipeline, validate
    from tacos.tracking import NullLogger, run_identity

    signal.signal(signal.SIGTERM, _sigterm)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        container = to_container(cfg)
    except MissingMandatoryValue as e:
        _fail(f"a required config value is missing: {e.full_key} (set it on the command line, e.g. "
              f"python run.py dataset=jsonl dataset.path=FILE)")
    secrets = find_secrets(container)
    if secrets:
        for f in (run_dir / ".hydra").glob("*.yaml"):
            scrub_file(f)
        _fail(f"config entries {secrets} hold credentials; keys are read from environment variables only "
              f"(e.g. OPENAI_API_KEY, named by llm.api_key_env). Nothing was run.")
    if cfg.offline:
        for var in OFFLINE_VARS:
            os.environ.setdefault(var, "1")

    hydra_cfg = HydraConfig.get()
    sweep_dir = hydra_cfg.sweep.dir if hydra_cfg.mode == RunMode.MULTIRUN else None
    group, name, tags = run_identity(cfg, sweep_dir)
    if "group" in cfg.logger:
        with open_dict(cfg):  # the train stage's own W&B run joins the same group
            cfg.logger.group = group
    logger = NullLogger() if cfg.dry_run else instantiate(cfg.logger)
    ok = False
    try:
        validate(cfg)
        logger.start(config=flatten(redact(container)), run_dir=run_dir, name=name, group=group, tags=tags)
        result = Pipeline(cfg, run_dir, logger).run()
        ok = True
    except KeyboardInterrupt:
        _fail("interrupted; finished stages and answered LLM calls are kept (re-run to resume)", code=130)
    except Exception as e:  # one clean line for expected errors; the traceback goes to <run_dir>/error.log
        import traceback

        (run_dir / "error.log").write_text(traceback.format_exc(), encoding="utf-8")
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or not _expected(e):
            log.exception("run failed")
        _fail(f"{type(e).__name__}: {e}  (traceback: {run_dir / 'error.log'})")
    finally:
        logger.finish(ok=ok)
    _summary(result, run_dir, bool(cfg.dry_run))


def _expected(e: Exception) -> bool:
    from tacos.pipeline import StageError

    names = {"DataError", "BudgetExceeded", "StageError", "FileNotFoundError", "ValueError", "RuntimeError"}
    return isinstance(e, StageError) or type(e).__name__ in names


def _fail(msg: str, code: int = 2) -> None:
    log.error(msg)
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


def _summary(result: dict, run_dir: Path, dry_run: bool) -> None:
    if dry_run:
        plan = result["dry_run"]
        print(f"\nDry run (nothing was called) — forecast per stage, written to {run_dir / 'dry_run.json'}")
        print(f"{'stage':<10} {'calls':>7} {'cached':>7} {'in tok':>9} {'out tok':>9} {'usd':>9} {'gpu h':>8}  exact")
        for name, p in plan.items():
            exact = "reused" if p.get("reused") else ("yes" if p.get("exact", True) else "estimate")
            print(f"{name:<10} {p.get('calls', 0):>7} {p.get('cache_hits', 0):>7} {p.get('prompt_tokens', 0):>9} "
                  f"{p.get('completion_tokens', 0):>9} {p.get('usd', 0.0):>9.4f} {p.get('gpu_hours', 0.0):>8.2f}  "
                  f"{exact}")
        return
    print(f"\nTACOS run dir: {run_dir}")
    print(f"{'stage':<10} {'seconds':>8} {'llm calls':>9} {'cached':>7}  counts")
    for name, m in result.items():
        llm = m.get("llm") or {}
        print(f"{name:<10} {m.get('seconds', 0):>8.1f} {llm.get('calls', 0):>9} {llm.get('cache_hits', 0):>7}  "
              f"{m.get('counts', {})}")
    export = result.get("export")
    if export:
        print(f"subset: {run_dir / 'export' / export['stats']['file']}  sha256 {export['stats']['subset_sha256'][:16]}")


if __name__ == "__main__":
    main()
