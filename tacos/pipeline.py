"""The runner: validate the config, run the selected stages in order, skip what is done, share what is shared,
forecast on a dry run. What a stage is and what it writes is defined in tacos.stage.

A stage writes into <run_dir>/.<stage>.partial/; when it returns, manifest.json is written there and the folder is
published as <run_dir>/<stage>/ (tacos.rundir: flushed to disk, renamed), so a folder with a manifest is always
complete and a killed stage leaves nothing that looks finished. A stage is skipped when its manifest has the same
config hash, code version and input hashes, no failed LLM call, and its files still hash to its output hash.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from tacos import __version__
from tacos.config import config_hash, to_container
from tacos.memory import release_models
from tacos.rundir import intact, publish_folder, run_dir_lock
from tacos.stage import (MANIFEST, Stage, StageContext, StageError, StageResult, component,
                         outputs_hash, read_manifest, write_json_atomic)
from tacos.stage_identity import Identity, code_version, failed_calls
from tacos.stages import STAGE_ORDER, get_stage

log = logging.getLogger(__name__)


def validate(cfg: DictConfig, run_dir: Path | None = None) -> list[str]:
    """Check the stage list and build (and validate) every component a stage will use, before any work starts."""
    stages = list(cfg.stages)
    unknown = [s for s in stages if s not in STAGE_ORDER]
    if unknown:
        raise StageError(f"unknown stage(s) {unknown}; stages are: {', '.join(STAGE_ORDER)}")
    if len(set(stages)) != len(stages):
        raise StageError(f"stages lists a stage twice: {stages}")
    if [STAGE_ORDER.index(s) for s in stages] != sorted(STAGE_ORDER.index(s) for s in stages):
        raise StageError(f"stages must follow the pipeline order {list(STAGE_ORDER)}; got {stages}")
    for name in stages:
        for group in get_stage(name).components:
            try:
                obj = component(cfg, group)
            except Exception as e:  # surface the config path in the message
                raise StageError(f"config group {group!r} (used by stage {name!r}) is invalid: {e}") from e
            if hasattr(obj, "validate"):
                obj.validate()
    for name in stages:  # checks of a stage's own (e.g. the answers registry entry it would replace)
        preflight = getattr(get_stage(name), "preflight", None)
        if preflight is not None:
            try:
                preflight(cfg, run_dir)
            except ValueError as e:
                raise StageError(str(e)) from None
    from tacos.llm.calling.settings import ClientSettings

    try:  # checked even when no stage uses the LLM: a wrong setting is wrong now, not at the first LLM run
        ClientSettings.from_config(to_container(cfg.client))
    except ValueError as e:
        raise StageError(str(e)) from None
    return stages


class Pipeline:
    """`Pipeline(cfg, run_dir)` validates the config (nothing runs on an invalid one); `.run()` does the work."""

    def __init__(self, cfg: DictConfig, run_dir: Path, logger: Any = None):
        self.stages = validate(cfg, Path(run_dir))
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.logger = logger
        self.session = None
        self.manifests: dict[str, dict] = {}
        self.outcomes: dict[str, str] = {}  # stage -> ran | skipped | reused | failed (tacos.summary)
        self.summary: dict | None = None

    # -- shared by the real run and the dry run ------------------------------------------------------------------
    def _open_session(self, stages: list[str]) -> None:
        if not any(get_stage(s).uses_llm(self.cfg) for s in stages):
            return
        from tacos.llm.calling.session import LLMSession

        self.session = LLMSession(component(self.cfg, "llm"), component(self.cfg, "paths").cache_dir,
                                  to_container(self.cfg.client), self.cfg.budget.max_usd, log_dir=self.run_dir)

    def _identity(self, stage: Stage) -> Identity:
        slice_ = to_container(stage.config_slice(self.cfg))
        if stage.uses_llm(self.cfg):
            slice_ = {"config": slice_, "llm": component(self.cfg, "llm").identity}
        inputs = {}
        for dep in stage.requires(self.cfg):
            m = read_manifest(self.run_dir, dep)
            if m is None:
                raise StageError(f"stage {stage.name!r} needs the output of stage {dep!r}, which is not complete in "
                                 f"{self.run_dir}. Add it to stages (stages=[{dep},{stage.name}]) or point "
                                 f"hydra.run.dir at a run that has it.")
            inputs[dep] = m["output_hash"]
        return Identity(slice_, config_hash(slice_), code_version(stage, self.cfg), inputs)

    def _store(self, stage: Stage):
        """The stage store when this stage's output may be shared between runs (share_outputs), else None."""
        from tacos.store import StageStore

        if stage.shareable and self.cfg.get("share_outputs", False):
            return StageStore(component(self.cfg, "paths").store_dir)
        return None

    def _done_here(self, stage: Stage, ident: Identity) -> dict | None:
        """The manifest of this stage in the run dir when it is complete, current and intact."""
        old = read_manifest(self.run_dir, stage.name)
        if not ident.matches(old):
            return None
        if failed_calls(old):
            log.info("stage %s: %d LLM call(s) failed last time (client.max_error_rate allowed it); computing it "
                     "again: only those calls are made", stage.name, failed_calls(old))
            return None
        if not intact(self.run_dir / stage.name):
            log.warning("stage %s: files in %s changed since it completed; computing it again", stage.name,
                        self.run_dir / stage.name)
            return None
        return old

    def _copy_from_store(self, stage: Stage, ident: Identity) -> Path | None:
        """Copy the stored output of this identity into the run dir (None when there is none, or it is damaged)."""
        store = self._store(stage)
        stored = store.lookup(stage.name, ident.store_key(stage.name)) if store else None
        if stored is None:
            return None
        if not intact(stored):
            log.warning("stage %s: stored output %s does not match its manifest; ignoring it", stage.name, stored)
            return None
        shutil.rmtree(self.run_dir / stage.name, ignore_errors=True)  # an outdated version of this stage
        store.materialize(stored, self.run_dir / stage.name)
        return stored

    # -- running -------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, dict]:
        stages = self.stages
        with run_dir_lock(self.run_dir):
            if self.cfg.dry_run:
                return {"dry_run": self.dry_run(stages)}
            t0, error, name = time.perf_counter(), None, None
            try:
                self._open_session(stages)
                for name in stages:
                    self.manifests[name] = self._run_stage(get_stage(name))
                    release_models()  # the next stage starts without this one's models (scoring LM, MiniLM)
            except BaseException as e:
                error = "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
                if name is not None and name not in self.manifests:
                    self.outcomes[name] = "failed"
                raise
            finally:
                if self.session is not None:
                    self.session.close()
                self._write_summary(time.perf_counter() - t0, error)
        return self.manifests

    def _write_summary(self, seconds: float, error: str | None) -> None:
        from tacos.summary import write_run_summary

        self.summary = write_run_summary(self.cfg, self.run_dir, self.stages, self.manifests, self.outcomes, seconds,
                                         error)

    def _run_stage(self, stage: Stage) -> dict:
        ident = self._identity(stage)
        done = self._done_here(stage, ident)
        if done is not None:
            log.info("stage %s: complete with identical config and inputs, skipped (%s)", stage.name,
                     self.run_dir / stage.name)
            self.outcomes[stage.name] = "skipped"
            return self._finish(stage, done)
        store = self._store(stage)
        if store is None:
            return self._compute(stage, ident)
        key = ident.store_key(stage.name)
        with store.lock(stage.name, key):
            stored = self._copy_from_store(stage, ident)
            manifest = self._reused(stage, stored) if stored else self._compute(stage, ident)
            if not failed_calls(manifest):  # an output missing failed calls is not shared: a later run retries them
                store.publish(stage.name, key, self.run_dir / stage.name)
        return manifest

    def _reused(self, stage: Stage, stored: Path) -> dict:
        manifest = read_manifest(self.run_dir, stage.name)
        log.info("stage %s: identical output already computed by another run, reused (%s)", stage.name, stored)
        self.outcomes[stage.name] = "reused"
        # This run's own cost of the stage is nothing; what computing it cost is kept for the record.
        manifest.update({"reused_from": str(stored), "computed": {"llm": manifest.get("llm", {}),
                         "seconds": manifest.get("seconds"), "started_at": manifest.get("started_at")},
                         "llm": {}, "seconds": 0.0})
        write_json_atomic(self.run_dir / stage.name / MANIFEST, manifest)  # a new file: the store's link is untouched
        return self._finish(stage, manifest)

    def _finish(self, stage: Stage, manifest: dict) -> dict:
        """After a stage is complete in the run dir (computed, skipped or reused): its publish hook, the gate's verdict
        on its judge (computed now, from the measurements as they are now), then tracking."""
        stage.publish(self.cfg, self.run_dir / stage.name, manifest)
        verdict = self._gate(stage, manifest)
        if self.logger:
            self.logger.log_stage(manifest, self.run_dir)
        if verdict is not None and not verdict["judge_informative"] and verdict["on_fail"] == "error":
            raise StageError(f"{stage.name}: the judge is not shown to be informative: "
                             + "; ".join(verdict["judge_gate_reasons"]) + " (gate.on_fail=error; the stage's output is "
                             "kept; set gate.on_fail=warn to go on)")
        return manifest

    def _gate(self, stage: Stage, manifest: dict) -> dict | None:
        from tacos.judges.gate import record_verdict

        return record_verdict(self.run_dir, stage.name, manifest, component(self.cfg, "gate"))

    def _compute(self, stage: Stage, ident: Identity) -> dict:
        partial = self.run_dir / f".{stage.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        ctx = StageContext(cfg=self.cfg, run_dir=self.run_dir, out_dir=partial, name=stage.name, session=self.session)
        before = self.session.stats if self.session is not None else None
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        log.info("stage %s: running", stage.name)
        result = stage.run(ctx) or StageResult()
        seconds = time.perf_counter() - t0
        manifest = {
            "stage": stage.name, "status": "complete", "tacos_version": __version__,
            "code_version": ident.code_version, "seed": int(self.cfg.seed), "config_hash": ident.config_hash,
            "config": ident.config, "inputs": ident.inputs, "output_hash": outputs_hash(partial),
            "outputs": sorted(str(p.relative_to(partial)) for p in partial.rglob("*") if p.is_file()),
            "counts": result.counts, "stats": result.stats, "llm": self._llm_delta(before), "plots": ctx.plots,
            "tables": ctx.tables, "seconds": round(seconds, 3), "started_at": started.isoformat(timespec="seconds"),
        }
        write_json_atomic(partial / MANIFEST, manifest)
        publish_folder(partial, self.run_dir / stage.name)
        self.outcomes[stage.name] = "ran"
        log.info("stage %s: done in %.1f s %s", stage.name, seconds, json.dumps(manifest["counts"], default=str))
        return self._finish(stage, manifest)

    def _llm_delta(self, before) -> dict:
        from tacos.llm.calling.session import stats_dict

        if self.session is None or before is None:
            return {}
        d = stats_dict(self.session.stats - before)
        if self.session.server_start_seconds is not None:
            d["server_start_seconds"] = self.session.server_start_seconds
        d["run_spent_usd"] = round(self.session.run_spent_usd, 6)  # the whole run dir, every process so far
        return d

    # -- dry run -------------------------------------------------------------------------------------------------
    def dry_run(self, stages: list[str]) -> dict:
        """Forecast LLM calls, tokens, cost, GPU and CPU hours per stage without calling any LLM (tacos.dry_run)."""
        from tacos.dry_run import forecast

        return forecast(self, stages)

    def _reusable(self, stage: Stage) -> bool:
        try:
            ident = self._identity(stage)
        except StageError:  # an input is not computed yet
            return False
        return self._done_here(stage, ident) is not None or self._copy_from_store(stage, ident) is not None
