"""The stage runner: validate the config, run the selected stages in order, write manifests, resume.

A stage is a module under tacos/stages with:
    requires(cfg) -> list[str]        stages whose output it reads (must be complete in the run dir)
    config_slice(cfg) -> dict          the config that determines its output (hashed into the manifest)
    run(ctx) -> dict                   writes into ctx.out_dir, returns {"counts": {...}, "stats": {...}}
    plan(ctx) -> dict   (optional)     dry-run forecast of LLM calls
    USES_LLM: bool
A stage writes into <run_dir>/.<stage>.partial/; when it returns, manifest.json is written there and the folder is
renamed to <run_dir>/<stage>/ — so a folder with a manifest is always complete, and a killed stage leaves nothing
that looks finished. A stage whose manifest has the same config hash and input hashes is skipped.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from tacos import __version__
from tacos.config import config_hash, to_container
from tacos.records import file_sha256

log = logging.getLogger(__name__)

STAGES: dict[str, str] = {
    "data": "tacos.stages.data",
    "tag": "tacos.stages.tag",
    "normalize": "tacos.stages.normalize",
    "cluster": "tacos.stages.cluster",
    "score": "tacos.stages.score",
    "select": "tacos.stages.select",
    "export": "tacos.stages.export",
    "refine": "tacos.stages.refine",
    "train": "tacos.stages.train",
    "infer": "tacos.stages.infer",
    "judge": "tacos.stages.judge",
    "report": "tacos.stages.report",
}
STAGE_ORDER = list(STAGES)
# Files that do not define a stage's output identity (plots are derived views).
_UNHASHED_SUFFIXES = (".png", ".log")


class StageError(RuntimeError):
    """A stage cannot run (missing input, invalid config) or failed; the message says what to do."""


def stage_module(name: str):
    if name not in STAGES:
        raise StageError(f"unknown stage {name!r}; stages are: {', '.join(STAGE_ORDER)}")
    return importlib.import_module(STAGES[name])


@dataclass
class StageContext:
    cfg: DictConfig
    run_dir: Path
    out_dir: Path
    name: str
    session: Any = None  # LLMSession, created lazily by the runner
    plots: list[str] = field(default_factory=list)
    tables: dict[str, dict] = field(default_factory=dict)
    _components: dict[str, Any] = field(default_factory=dict)

    def input_dir(self, stage: str) -> Path:
        d = self.run_dir / stage
        if not (d / "manifest.json").is_file():
            raise StageError(f"stage {self.name!r} needs the output of stage {stage!r}, which is not complete in "
                             f"{self.run_dir}. Run it first (e.g. stages=[{stage},{self.name}]) or point "
                             f"hydra.run.dir at a run that has it.")
        return d

    def component(self, group: str) -> Any:
        """The instantiated object of a config group (dataset, tagger, clustering, scorer, selection, ...)."""
        if group not in self._components:
            from hydra.utils import instantiate

            self._components[group] = instantiate(self.cfg[group], _convert_="all")
        return self._components[group]

    @property
    def llm(self):
        if self.session is None:
            raise StageError(f"stage {self.name!r} needs an LLM but none is configured")
        return self.session

    def add_plot(self, path: Path) -> None:
        self.plots.append(str(Path(path).relative_to(self.out_dir)))

    def add_table(self, name: str, columns: list[str], data: list[list]) -> None:
        self.tables[name] = {"columns": columns, "data": data}


def outputs_hash(folder: Path) -> str:
    """One hash over a stage's data files (names + contents), excluding the manifest and plots."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "manifest.json" and not p.name.endswith(_UNHASHED_SUFFIXES):
            h.update(str(p.relative_to(folder)).encode())
            h.update(file_sha256(p).encode())
    return h.hexdigest()


def read_manifest(run_dir: Path, stage: str) -> dict | None:
    p = run_dir / stage / "manifest.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def validate(cfg: DictConfig) -> list[str]:
    """Check the stage list and instantiate every component a stage will use, before any work starts."""
    from hydra.utils import instantiate

    stages = list(cfg.stages)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise StageError(f"unknown stage(s) {unknown}; stages are: {', '.join(STAGE_ORDER)}")
    if len(set(stages)) != len(stages):
        raise StageError(f"stages lists a stage twice: {stages}")
    order = [STAGE_ORDER.index(s) for s in stages]
    if order != sorted(order):
        raise StageError(f"stages must follow the pipeline order {STAGE_ORDER}; got {stages}")
    for s in stages:
        mod = stage_module(s)
        for group in getattr(mod, "COMPONENTS", ()):
            try:
                obj = instantiate(cfg[group], _convert_="all")
            except Exception as e:  # surface the config path in the message
                raise StageError(f"config group {group!r} (used by stage {s!r}) is invalid: {e}") from e
            check = getattr(obj, "validate", None)
            if check is not None:
                check()
    return stages


class Pipeline:
    def __init__(self, cfg: DictConfig, run_dir: Path, logger: Any = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.logger = logger
        self.session = None
        self.manifests: dict[str, dict] = {}

    # -- LLM session ---------------------------------------------------------------------------------------------
    def _needs_llm(self, stages: list[str]) -> bool:
        return any(getattr(stage_module(s), "uses_llm", lambda cfg: False)(self.cfg) for s in stages)

    def _open_session(self):
        from hydra.utils import instantiate

        from tacos.llm.session import LLMSession

        provider = instantiate(self.cfg.llm, _convert_="all")
        client_cfg = to_container(self.cfg.client)
        self.session = LLMSession(provider, self.cfg.paths.cache_dir, client_cfg,
                                  self.cfg.budget.max_usd, log_dir=self.run_dir)
        return self.session

    def llm_identity(self) -> str | None:
        from hydra.utils import instantiate

        return instantiate(self.cfg.llm, _convert_="all").identity

    # -- stage identity --------------------------------------------------------------------------------------------
    def _identity(self, name: str, mod) -> tuple[dict, str, dict]:
        slice_ = to_container(mod.config_slice(self.cfg))
        if getattr(mod, "uses_llm", lambda cfg: False)(self.cfg):
            slice_ = {"config": slice_, "llm": self.llm_identity()}
        inputs = {}
        for dep in mod.requires(self.cfg):
            m = read_manifest(self.run_dir, dep)
            if m is None:
                raise StageError(f"stage {name!r} needs the output of stage {dep!r}, which is not complete in "
                                 f"{self.run_dir}. Add it to stages (stages=[{dep},{name}]) or point "
                                 f"hydra.run.dir at a run that has it.")
            inputs[dep] = m["output_hash"]
        return slice_, config_hash(slice_), inputs

    # -- running -------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, dict]:
        stages = validate(self.cfg)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.cfg.dry_run:
            return {"dry_run": self.dry_run(stages)}
        try:
            if self._needs_llm(stages):
                self._open_session()
            for name in stages:
                self.manifests[name] = self._run_stage(name)
        finally:
            if self.session is not None:
                self.session.close()
        return self.manifests

    def _store(self, mod):
        """The stage store when this stage's output may be shared between runs (share_outputs), else None."""
        from tacos.store import StageStore

        if getattr(mod, "SHAREABLE", False) and self.cfg.get("share_outputs", False):
            return StageStore(self.cfg.paths.store_dir)
        return None

    def _run_stage(self, name: str) -> dict:
        mod = stage_module(name)
        slice_, chash, inputs = self._identity(name, mod)
        old = read_manifest(self.run_dir, name)
        if old and old.get("status") == "complete" and old.get("config_hash") == chash and old.get("inputs") == inputs:
            log.info("stage %s: complete with identical config and inputs, skipped (%s)", name, self.run_dir / name)
            return self._done(old)
        store = self._store(mod)
        if store is None:
            return self._compute(name, mod, slice_, chash, inputs)
        from tacos.store import store_key

        key = store_key(name, chash, inputs, __version__)
        with store.lock(name, key):
            manifest = self._reuse(store, name, key) or self._compute(name, mod, slice_, chash, inputs)
            store.publish(name, key, self.run_dir / name)
        return manifest

    def _reuse(self, store, name: str, key: str) -> dict | None:
        stored = store.lookup(name, key)
        if stored is None:
            return None
        final = self.run_dir / name
        shutil.rmtree(final, ignore_errors=True)  # an outdated version of this stage (different config)
        store.materialize(stored, final)
        manifest = read_manifest(self.run_dir, name)
        log.info("stage %s: identical output already computed by another run, reused (%s)", name, stored)
        # This run's own cost of the stage is nothing; what computing it cost is kept for the record.
        manifest.update({"reused_from": str(stored), "computed": {"llm": manifest.get("llm", {}),
                         "seconds": manifest.get("seconds"), "started_at": manifest.get("started_at")},
                         "llm": {}, "seconds": 0.0})
        write_json_atomic(final / "manifest.json", manifest)  # a new file: the store's hard link is untouched
        return self._done(manifest)

    def _done(self, manifest: dict) -> dict:
        """After a stage is complete in the run dir (computed, resumed or reused): stage hooks, then tracking."""
        hook = getattr(stage_module(manifest["stage"]), "publish", None)
        if hook is not None:
            hook(self.cfg, self.run_dir / manifest["stage"], manifest)
        if self.logger:
            self.logger.log_stage(manifest, self.run_dir)
        return manifest

    def _compute(self, name: str, mod, slice_: dict, chash: str, inputs: dict) -> dict:
        partial = self.run_dir / f".{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        ctx = StageContext(cfg=self.cfg, run_dir=self.run_dir, out_dir=partial, name=name, session=self.session)
        before = self.session.stats if self.session is not None else None
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        log.info("stage %s: running", name)
        result = mod.run(ctx) or {}
        seconds = time.perf_counter() - t0
        manifest = {
            "stage": name,
            "status": "complete",
            "tacos_version": __version__,
            "seed": int(self.cfg.seed),
            "config_hash": chash,
            "config": slice_,
            "inputs": inputs,
            "output_hash": outputs_hash(partial),
            "outputs": sorted(str(p.relative_to(partial)) for p in partial.rglob("*") if p.is_file()),
            "counts": result.get("counts", {}),
            "stats": result.get("stats", {}),
            "llm": self._llm_delta(before),
            "plots": ctx.plots,
            "tables": ctx.tables,
            "seconds": round(seconds, 3),
            "started_at": started.isoformat(timespec="seconds"),
        }
        write_json_atomic(partial / "manifest.json", manifest)
        final = self.run_dir / name
        if final.exists():
            trash = self.run_dir / f".{name}.old"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            os.replace(partial, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(partial, final)
        log.info("stage %s: done in %.1f s %s", name, seconds, json.dumps(manifest["counts"]))
        return self._done(manifest)

    def _llm_delta(self, before) -> dict:
        from tacos.llm.session import stats_dict

        if self.session is None or before is None:
            return {}
        d = stats_dict(self.session.stats - before)
        if self.session.server_start_seconds is not None:
            d["server_start_seconds"] = self.session.server_start_seconds
        return d

    # -- dry run -------------------------------------------------------------------------------------------------
    def _reusable(self, name: str, mod) -> bool:
        """Dry run: is this stage already complete here or in the store? A stored output is copied in (as the real
        run would do first), so the forecasts of later stages read real inputs and are exact."""
        from tacos.store import store_key

        try:
            _, chash, inputs = self._identity(name, mod)
        except StageError:  # an input is not computed yet
            return False
        old = read_manifest(self.run_dir, name)
        if old and old.get("status") == "complete" and old.get("config_hash") == chash and old.get("inputs") == inputs:
            return True
        store = self._store(mod)
        stored = store.lookup(name, store_key(name, chash, inputs, __version__)) if store else None
        if stored is None:
            return False
        shutil.rmtree(self.run_dir / name, ignore_errors=True)
        store.materialize(stored, self.run_dir / name)
        return True

    def dry_run(self, stages: list[str]) -> dict:
        """Forecast LLM calls, tokens and cost per stage without calling any LLM (nothing is started)."""
        from tacos.llm.session import LLMSession

        provider = None
        if self._needs_llm(stages):
            from hydra.utils import instantiate

            provider = instantiate(self.cfg.llm, _convert_="all")
            self.session = LLMSession(provider, self.cfg.paths.cache_dir, to_container(self.cfg.client),
                                      self.cfg.budget.max_usd, log_dir=self.run_dir)
        report: dict[str, dict] = {}
        try:
            for name in stages:
                mod = stage_module(name)
                if self._reusable(name, mod):
                    report[name] = {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                    "usd": 0.0, "exact": True, "reused": True}
                    continue
                plan = getattr(mod, "plan", None)
                ctx = StageContext(cfg=self.cfg, run_dir=self.run_dir, out_dir=self.run_dir, name=name,
                                   session=self.session)
                report[name] = plan(ctx) if plan else {"calls": 0, "cache_hits": 0, "prompt_tokens": 0,
                                                        "completion_tokens": 0, "usd": 0.0, "exact": True}
        finally:
            if self.session is not None:
                self.session.cache.close()
        total = {k: sum(r.get(k, 0) for r in report.values())
                 for k in ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "usd", "gpu_hours")}
        total["exact"] = all(r.get("exact", True) for r in report.values())
        report["total"] = total
        write_json_atomic(self.run_dir / "dry_run.json", report)
        return report
