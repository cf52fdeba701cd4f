"""Experiment tracking. Only run.py talks to these; stages never do."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


class NullLogger:
    """logger=none: no tracking."""

    def start(self, config: dict, run_dir: Path, name: str) -> None:  # noqa: D401
        pass

    def log_stage(self, manifest: dict, run_dir: Path) -> None:
        pass

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

    def start(self, config: dict, run_dir: Path, name: str) -> None:
        os.environ.setdefault("WANDB_MODE", self.mode)
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb  # lazy: keeps `run.py --help` fast

        self._run = wandb.init(project=self.project, entity=self.entity, group=self.group, name=name,
                               mode=self.mode, tags=list(self.tags), config=config, dir=str(run_dir),
                               job_type="tacos")
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

    def finish(self, ok: bool = True) -> None:
        if self._run is not None:
            self._run.finish(exit_code=0 if ok else 1)
            self._run = None
