"""The stage contract: what every stage declares and implements, the context it runs in, its errors, its manifest.

A stage turns the outputs of the stages it `requires` (records in JSON Lines under `<run_dir>/<stage>/`) and its
slice of the config into files in `ctx.out_dir` plus counts and stats; the runner (tacos.pipeline) adds the
manifest and makes the folder appear atomically. A stage never talks to W&B and never reads a stage it did not
declare. This module is low level: it imports no stage, no runner and nothing heavy.

    class TagStage(StageBase):
        name, shareable, components = "tag", True, ("tagger",)
        def requires(self, cfg): return ["data"]
        def config_slice(self, cfg): return {...}     # what determines the output (hashed)
        def run(self, ctx): ...; return StageResult(counts={...}, stats={...})
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tacos.records import DiskFull, file_sha256, is_disk_full

# Files that do not define a stage's output identity (plots are derived views).
UNHASHED_SUFFIXES = (".png", ".log")
MANIFEST = "manifest.json"


class StageError(RuntimeError):
    """A stage cannot run (missing input, invalid config) or failed; the message says what to do."""


@dataclass
class StageResult:
    """What `Stage.run` returns besides its files: small numbers for the manifest, the summary and W&B."""

    counts: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Stage(Protocol):
    """What the runner knows of a stage. `StageBase` gives the defaults of the optional parts."""

    name: str
    shareable: bool  # output is a function of (config slice, inputs, version): may be shared between runs
    components: tuple[str, ...]  # config groups it instantiates; validated before any stage runs

    def requires(self, cfg) -> list[str]: ...  # stages whose complete output it reads
    def uses_llm(self, cfg) -> bool: ...
    def config_slice(self, cfg) -> dict: ...  # the config (and file hashes) that determine its output
    def run(self, ctx: "StageContext") -> StageResult: ...
    def plan(self, ctx: "StageContext") -> dict: ...  # dry run: forecast of LLM calls, tokens, cost (GPU hours)
    def publish(self, cfg, stage_dir: Path, manifest: dict) -> None: ...  # after completion (e.g. register answers)


class StageBase:
    """Defaults: no LLM, nothing to forecast, nothing to publish, not shared, no component."""

    name: str = ""
    shareable: bool = False
    components: tuple[str, ...] = ()

    def requires(self, cfg) -> list[str]:
        return []

    def uses_llm(self, cfg) -> bool:
        return False

    def config_slice(self, cfg) -> dict:
        return {}

    def run(self, ctx: "StageContext") -> StageResult:
        raise NotImplementedError

    def plan(self, ctx: "StageContext") -> dict:
        return empty_plan()

    def publish(self, cfg, stage_dir: Path, manifest: dict) -> None:
        return None


def files_read(files: dict[str, Path]) -> dict[str, str]:
    """label -> sha256 of each data file a stage reads (a template, a test set, its questions), for its config slice:
    an edited file makes the stage's earlier output stale. A missing file is "missing" (the stage's run reports it)."""
    return {label: file_sha256(p) if Path(p).is_file() else "missing" for label, p in sorted(files.items())}


def empty_plan() -> dict:
    return {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "usd": 0.0, "exact": True}


def component(cfg, group: str) -> Any:
    """The object a config group's `_target_` builds (a tagger, a scorer, the judge settings, ...)."""
    from hydra.utils import instantiate

    return instantiate(cfg[group], _convert_="all")


@dataclass
class StageContext:
    cfg: Any  # the composed DictConfig
    run_dir: Path
    out_dir: Path  # where the stage writes (the partial folder while it runs)
    name: str
    session: Any = None  # tacos.llm.calling.session.LLMSession when the run uses an LLM
    plan_pool: Any = None  # dry run: the pool's rows as read once for every stage's forecast (tacos.stage_io)
    plots: list[str] = field(default_factory=list)
    tables: dict[str, dict] = field(default_factory=dict)
    _components: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    @property
    def paths(self):
        """tacos.paths.Paths: every directory of the run, absolute."""
        return self.component("paths")

    def input_dir(self, stage: str) -> Path:
        d = self.run_dir / stage
        if not (d / MANIFEST).is_file():
            raise StageError(f"stage {self.name!r} needs the output of stage {stage!r}, which is not complete in "
                             f"{self.run_dir}. Run it first (e.g. stages=[{stage},{self.name}]) or point "
                             f"hydra.run.dir at a run that has it.")
        return d

    def component(self, group: str) -> Any:
        if group not in self._components:
            self._components[group] = component(self.cfg, group)
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


# -- manifests -------------------------------------------------------------------------------------------------------
def outputs_hash(folder: Path) -> str:
    """One hash over a stage's data files (names + contents), excluding the manifest and plots."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST and not p.name.endswith(UNHASHED_SUFFIXES):
            h.update(str(p.relative_to(folder)).encode())
            h.update(file_sha256(p).encode())
    return h.hexdigest()


def read_manifest(run_dir: Path, stage: str) -> dict | None:
    p = Path(run_dir) / stage / MANIFEST
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write, flush to disk, then rename: readers see the old file or the whole new one, even after a crash."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if is_disk_full(e):
            raise DiskFull(path, e.errno) from e
        raise
