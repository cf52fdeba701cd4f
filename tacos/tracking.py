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
RUN_FILE = "wandb_run.json"  # <run_dir>/wandb_run.json: the W&B run of the last invocation (id, project, group, ...)
LINEAGE_STAGES = ("export", "train", "infer")  # each logs its artifact from a step run of its own (see log_stage)


def run_kind(stages: Any) -> str:
    """The W&B job_type of a pipeline run: what the invocation did, furthest stage first."""
    if isinstance(stages, str):
        import json

        stages = json.loads(stages)
    s = set(stages or [])
    if s and s <= {"report"}:
        return "report"
    if s & {"infer", "judge"}:
        return "evaluation"
    return "training" if "train" in s else "selection"


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
        self._init: dict[str, Any] = {}  # wandb.init arguments shared by the step runs
        self._config: dict = {}

    def training_report_to(self) -> str:
        """What a training child (LLaMA-Factory's report_to) reports to when train.report_to=auto: W&B, as its own
        run in this run's project and group."""
        return "wandb"

    def start(self, config: dict, run_dir: Path, name: str, group: str | None = None,
              tags: list[str] | None = None) -> None:
        os.environ.setdefault("WANDB_MODE", self.mode)
        os.environ.setdefault("WANDB_SILENT", "true")
        self._config = config
        self._init = {"project": self.project, "entity": self.entity, "group": group or self.group, "mode": self.mode,
                      "tags": list(tags if tags is not None else self.tags), "dir": str(run_dir)}
        self._run = _init(name=name, config=config, job_type=run_kind(config.get("stages")), **self._init)
        log.info("W&B run %s (%s mode) in %s", self._run.id, self.mode, self._run.dir)
        write_run_file(run_dir, {"id": self._run.id, "name": name, "project": self.project, "entity": self.entity,
                                 "group": self._init["group"], "mode": self.mode})

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
        if stage == "select":
            self._log_selection(manifest, run_dir)
        if stage in LINEAGE_STAGES:
            try:
                self._log_lineage(stage, Path(run_dir))
            except Exception as e:  # tracking never fails a run whose work is done
                log.warning("W&B: the %s artifacts were not logged: %s: %s", stage, type(e).__name__, e)
        gate = manifest.get("gate") or {}
        if gate.get("judge_informative") is False:  # the gate failed: filterable on the dashboard
            self._run.tags = tuple(sorted({*self._run.tags, f"{stage}:judge-not-informative"}))
            self._run.summary[f"{stage}/judge_gate_reasons"] = "; ".join(gate.get("judge_gate_reasons", []))
        if gate:
            self._run.summary[f"{stage}/judge_informative"] = gate.get("judge_informative")

    def _log_selection(self, manifest: dict, run_dir: Path) -> None:
        """The selected rows as a table (what was chosen and why), and what the subset prefers as summary metrics
        (subset/...: one number per run, to chart across a sweep)."""
        import wandb

        from tacos.wandb_lineage import selected_rows

        columns, rows = selected_rows(Path(run_dir) / "select")
        self._run.log({"select/selected_rows": wandb.Table(columns=columns, data=rows)})
        for key, value in ((manifest.get("stats") or {}).get("prefers") or {}).items():
            if value is not None:
                self._run.summary[f"subset/{key}"] = value

    def _log_lineage(self, stage: str, run_dir: Path) -> None:
        """pool -> subset -> model -> answers. Each link is a short step run of its own (job_type = the stage, same
        group, named <run>/<stage>) that uses its input and logs its output, so W&B's lineage graph reads as a chain;
        this run keeps the numbers, tables and plots."""
        from tacos import wandb_lineage as wl

        run_name = str(self._config.get("run_name") or self._run.name)
        model = str(self._config.get("model.name") or "")
        if stage == "export":
            uses = [wl.pool_artifact(run_dir, str(self._config.get("dataset.name") or ""))]
            logs = [wl.subset_artifact(run_dir / "export", run_name)]
        elif stage == "train":
            stats = wl._manifest(run_dir / "train").get("stats", {})
            uses, logs = [wl.training_subset(run_dir, stats, run_name)], [wl.model_artifact(run_dir / "train",
                                                                                           run_name, model)]
        else:
            uses, logs = [wl.infer_model(run_dir, run_name, model)], [wl.answers_artifact(run_dir / "infer", run_name)]
        uses, logs = [a for a in uses if a is not None], [a for a in logs if a is not None]
        if not uses and not logs:
            return
        step = _init(name=f"{self._run.name}/{stage}", job_type=stage, reinit="create_new",
                     config={**self._config, "pipeline_run": self._run.id}, **self._init)
        try:
            for art in uses:
                use_artifact(step, art)
            for art in logs:
                step.log_artifact(art)
                self._run.summary[f"artifacts/{art.type}"] = art.name
        finally:
            step.finish()

    def finish(self, ok: bool = True) -> None:
        if self._run is not None:
            self._run.finish(exit_code=0 if ok else 1)
            self._run = None


def _init(**kwargs):
    """wandb.init with the command line W&B records (sys.argv, in the run's metadata) stripped of credentials."""
    import wandb  # lazy: keeps `run.py --help` fast

    argv = sys.argv
    sys.argv = [argv[0], *redact_overrides(argv[1:])]
    try:
        return wandb.init(**kwargs)
    finally:
        sys.argv = argv


def use_artifact(run, artifact) -> None:
    """Mark an artifact (built here, maybe logged before by another run) as an input of `run`. Online this is
    run.use_artifact; offline W&B refuses use_artifact, so the artifact is recorded exactly as use_artifact records a
    new one online (logged with use_after_commit): `wandb sync` creates or finds the version with that digest and marks
    it used."""
    if run.settings._offline:
        run._log_artifact(artifact, is_user_created=True, use_after_commit=True)
    else:
        run.use_artifact(artifact)


def write_run_file(run_dir: Path, info: dict) -> None:
    import json

    try:
        (Path(run_dir) / RUN_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    except OSError as e:
        log.warning("could not write %s: %s", Path(run_dir) / RUN_FILE, e)


def log_report(root: Path, out: Path, rep: dict, group: str | None = None, project: str | None = None,
               entity: str | None = None, mode: str | None = None) -> str:
    """`tacos report --wandb`: the report of a sweep as a W&B run of its own (job_type report) in the sweep's group:
    the W/T/L chart and the comparison figure as images, the results and summary as tables. The group and project
    default to those the runs below root logged to (RUN_FILE); returns the group."""
    import json

    import wandb

    from tacos.benchmarks.report import SUMMARY_COLUMNS, find_runs

    logged = [json.loads(p.read_text(encoding="utf-8")) for r in find_runs(root)
              if (p := r.path / RUN_FILE).is_file()]
    groups = sorted({x.get("group") for x in logged if x.get("group")})
    group = group or (groups[0] if len(groups) == 1 else f"report-{Path(root).resolve().name}")
    project = project or next((x["project"] for x in logged if x.get("project")), "tacos")
    mode = mode or os.environ.get("WANDB_MODE") or next((x["mode"] for x in logged if x.get("mode")), "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    run = _init(project=project, entity=entity, group=group, name=f"report-{Path(root).resolve().name}",
                job_type="report", mode=mode, dir=str(out), config={"root": str(Path(root).resolve())})
    try:
        payload = {f"report/{Path(p).stem}": wandb.Image(str(p)) for p in rep.get("plots", [])}
        payload["report/results"] = wandb.Table(columns=rep["result_columns"], data=rep["results"])
        payload["report/summary"] = wandb.Table(columns=SUMMARY_COLUMNS, data=rep["summary"])
        run.log(payload)
    finally:
        run.finish()
    return group
