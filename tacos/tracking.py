"""Experiment tracking. Only run.py talks to these; stages never do."""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tacos.config import redact_overrides

log = logging.getLogger(__name__)


def _numbers(prefix: str, obj: Any) -> dict[str, float]:
    """Every int/float/bool leaf of a manifest section, as flat `prefix/key` metrics."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_numbers(f"{prefix}/{k}", v))
    elif isinstance(obj, bool):
        out[prefix] = int(obj)
    elif isinstance(obj, (int, float)):
        out[prefix] = obj
    return out


def manifest_metrics(manifest: dict) -> dict[str, float]:
    stage = manifest["stage"]
    metrics = _numbers(stage, {k: manifest.get(k) for k in ("counts", "llm", "stats")})
    metrics[f"{stage}/seconds"] = manifest.get("seconds", 0.0)
    return metrics


MODEL_STAGES = ("train", "infer", "judge")


def run_identity(cfg: Any, sweep_dir: str | None) -> tuple[str, str, list[str]]:
    """(group, name, tags) of a run on the dashboard. Jobs of one sweep share a group (the sweep dir's name, or
    logger.group); names read <run_name>-<model> when a model is trained/evaluated, else <run_name>; tags carry
    the axes to filter on (dataset, selection, scorer, clustering, model)."""
    from omegaconf import OmegaConf

    group = OmegaConf.select(cfg, "logger.group", default=None)
    if not group:
        group = f"sweep-{Path(sweep_dir).parent.name}-{Path(sweep_dir).name}" if sweep_dir else str(cfg.run_name)
    name = str(cfg.run_name)
    if any(s in MODEL_STAGES for s in cfg.stages):
        name = f"{name}-{cfg.model.name}"
    axes = {k: OmegaConf.select(cfg, f"{k}.name", default=None)
            for k in ("dataset", "selection", "scorer", "clustering", "model")}
    tags = [f"{k}:{v}" for k, v in axes.items() if v] + [str(x) for x in (OmegaConf.select(cfg, "logger.tags") or [])]
    return str(group), name, tags


class NullLogger:
    """logger=none: no tracking."""

    def __init__(self, group: str | None = None) -> None:  # group: accepted so sweeps can set logger.group always
        self.group = group

    def start(self, config: dict, run_dir: Path, name: str, group: str | None = None,
              tags: list[str] | None = None) -> None:  # noqa: D401
        pass

    def log_stage(self, manifest: dict, run_dir: Path) -> None:
        pass

    def training_report_to(self) -> str:
        """What a training child (LLaMA-Factory's report_to) reports to when train.report_to=auto: nothing."""
        return "none"

    def finish(self, ok: bool = True) -> None:
        pass


@dataclass
class WandbLogger:
    """W&B, offline unless WANDB_MODE says otherwise; config logged flat and without secrets."""

    project: str = "tacos"
    entity: str | None = None
    group: str | None = None
    mode: str = "offline"
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._run = None

    def training_report_to(self) -> str:
        """What a training child (LLaMA-Factory's report_to) reports to when train.report_to=auto: W&B, as its own
        run in this run's project and group."""
        return "wandb"

    def start(self, config: dict, run_dir: Path, name: str, group: str | None = None,
              tags: list[str] | None = None) -> None:
        os.environ.setdefault("WANDB_MODE", self.mode)
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb  # lazy: keeps `run.py --help` fast

        # W&B records the command line (sys.argv) in the run's metadata: it gets one without credentials.
        argv = sys.argv
        sys.argv = [argv[0], *redact_overrides(argv[1:])]
        try:
            self._run = wandb.init(project=self.project, entity=self.entity, group=group or self.group, name=name,
                                   mode=self.mode, tags=list(tags if tags is not None else self.tags), config=config,
                                   dir=str(run_dir), job_type="tacos")
        finally:
            sys.argv = argv
        log.info("W&B run %s (%s mode) in %s", self._run.id, self.mode, self._run.dir)

    def log_stage(self, manifest: dict, run_dir: Path) -> None:
        if self._run is None:
            return
        import wandb

        payload: dict[str, Any] = dict(manifest_metrics(manifest))
        stage = manifest["stage"]
        for rel in manifest.get("plots", []):
            p = run_dir / stage / rel
            if p.is_file():
                payload[f"{stage}/plots/{Path(rel).stem}"] = wandb.Image(str(p))
        for name, table in (manifest.get("tables") or {}).items():
            payload[f"{stage}/{name}"] = wandb.Table(columns=table["columns"], data=table["data"])
        self._run.log(payload)
        for key in ("subset_sha256",):
            if key in manifest.get("stats", {}):
                self._run.summary[f"{stage}/{key}"] = manifest["stats"][key]
        gate = manifest.get("gate") or {}
        if gate.get("judge_informative") is False:  # the gate failed: filterable on the dashboard
            self._run.tags = tuple(sorted({*self._run.tags, f"{stage}:judge-not-informative"}))
            self._run.summary[f"{stage}/judge_gate_reasons"] = "; ".join(gate.get("judge_gate_reasons", []))
        if gate:
            self._run.summary[f"{stage}/judge_informative"] = gate.get("judge_informative")

    def finish(self, ok: bool = True) -> None:
        if self._run is not None:
            self._run.finish(exit_code=0 if ok else 1)
            self._run = None
