"""summary.json and summary.md: what a run did, in one place, written into its run dir when it ends (failed or not).

Stages run / skipped / reused with their seconds, LLM calls and cost; what was selected and why (the counts of each
selection stage, the most common reasons rows were excluded); the gate's verdicts (gate.json). The same table is what
`python run.py` prints at its end (tacos.summary.stage_table).
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUMMARY_JSON, SUMMARY_MD = "summary.json", "summary.md"
OUTCOMES = {"ran": "ran", "skipped": "skipped (complete here, identical)", "reused": "reused (same output elsewhere)",
            "failed": "FAILED", "not run": "not run"}
TOP_REASONS = 5


def build(run_dir: Path, names: dict[str, str], stages: list[str], manifests: dict[str, dict],
          outcomes: dict[str, str], seconds: float, error: str | None = None) -> dict:
    """The summary of a run: `names` (run_name, dataset, model), the stages asked for, their manifests and outcomes."""
    rows = []
    for name in stages:
        m = manifests.get(name) or {}
        llm = m.get("llm") or {}
        rows.append({"stage": name, "outcome": outcomes.get(name, "not run"), "seconds": m.get("seconds"),
                     "llm_calls": int(llm.get("calls", 0) or 0), "cache_hits": int(llm.get("cache_hits", 0) or 0),
                     "cost_usd": round(float(llm.get("cost_usd", 0.0) or 0.0), 6), "counts": m.get("counts") or {}})
    return {"written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **names,
            "status": "failed" if error else "complete", "error": error, "seconds": round(seconds, 1),
            "llm_calls": sum(r["llm_calls"] for r in rows), "cost_usd": round(sum(r["cost_usd"] for r in rows), 6),
            "stages": rows, "selection": selection_facts(run_dir, manifests), "gate": _read(run_dir / "gate.json")}


def selection_facts(run_dir: Path, manifests: dict[str, dict]) -> dict:
    """What was selected and why: the selection stages' counts, the subset file and the top exclusion reasons."""
    facts: dict[str, Any] = {}
    for stage in ("data", "clean", "cluster", "score", "select"):
        if stage in manifests:
            facts[stage] = manifests[stage].get("counts") or {}
    export = (manifests.get("export") or {}).get("stats") or {}
    if export.get("file"):
        facts["subset"] = {"file": str(run_dir / "export" / export["file"]),
                           "sha256": (export.get("subset_sha256") or "")[:16]}
    reasons: Counter = Counter()
    excluded = run_dir / "select" / "excluded.jsonl"
    if excluded.is_file():
        for line in excluded.read_text(encoding="utf-8").splitlines():
            try:
                reasons[json.loads(line).get("reason") or "unknown"] += 1
            except ValueError:
                continue
    cluster = (manifests.get("cluster") or {}).get("counts") or {}
    if cluster.get("records") is not None and cluster.get("kept_after_dedup") is not None:
        dropped = int(cluster["records"]) - int(cluster["kept_after_dedup"])
        if dropped > 0:
            reasons["same tag set as another row (clustering.dedup_label_sets): not clustered"] += dropped
    select = (manifests.get("select") or {}).get("counts") or {}
    if select.get("pool") is not None and select.get("selected") is not None:
        ranked_out = int(select["pool"]) - int(select["selected"]) - sum(reasons.values())
        if ranked_out > 0:
            reasons[f"not among the top rows (selection budget {select.get('budget')})"] += ranked_out
    facts["top_exclusion_reasons"] = [{"reason": r, "rows": n} for r, n in reasons.most_common(TOP_REASONS)]
    return facts


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def stage_table(summary: dict) -> str:
    """The stages as an aligned text table (printed at the end of a run, and in summary.md)."""
    head = f"{'stage':<10} {'outcome':<10} {'seconds':>8} {'llm calls':>9} {'cached':>7} {'usd':>8}  counts"
    lines = [head]
    for r in summary["stages"]:
        secs = "–" if r["seconds"] is None else f"{r['seconds']:.1f}"
        lines.append(f"{r['stage']:<10} {r['outcome']:<10} {secs:>8} {r['llm_calls']:>9} {r['cache_hits']:>7} "
                     f"{r['cost_usd']:>8.4f}  {_counts(r['counts'])}")
    return "\n".join(lines)


def markdown(summary: dict) -> str:
    lines = [f"# Run {summary.get('run_name', '')}", "",
             f"- status: **{summary['status']}**" + (f" — {summary['error']}" if summary.get("error") else ""),
             f"- dataset: {summary.get('dataset', '–')}, model: {summary.get('model', '–')}",
             f"- {summary['seconds']} s, {summary['llm_calls']} LLM calls, ${summary['cost_usd']:.4f}", "",
             "## Stages", "", "| stage | outcome | seconds | LLM calls | cached | USD | counts |", "|---|---|---|---|---|---|---|"]
    for r in summary["stages"]:
        secs = "–" if r["seconds"] is None else f"{r['seconds']:.1f}"
        lines.append(f"| {r['stage']} | {OUTCOMES.get(r['outcome'], r['outcome'])} | {secs} | {r['llm_calls']} | "
                     f"{r['cache_hits']} | {r['cost_usd']:.4f} | {_counts(r['counts'])} |")
    sel = summary.get("selection") or {}
    lines += ["", "## What was selected and why", ""]
    for stage in ("data", "clean", "cluster", "score", "select"):
        if stage in sel:
            lines.append(f"- {stage}: {_counts(sel[stage]) or '–'}")
    if sel.get("subset"):
        lines.append(f"- subset: `{sel['subset']['file']}` (sha256 {sel['subset']['sha256']})")
    if sel.get("top_exclusion_reasons"):
        lines += ["", "Top reasons rows were not selected:", ""]
        lines += [f"- {r['rows']} rows: {r['reason']}" for r in sel["top_exclusion_reasons"]]
    if not any(k in sel for k in ("select", "subset")):
        lines.append("- nothing was selected in this run")
    lines += ["", "## Is the judge informative? (the gate, gate.json)", ""]
    gate = summary.get("gate") or {}
    if not gate:
        lines.append("- no judged stage in this run")
    for stage, v in gate.items():
        verdict = "passed" if v.get("judge_informative") else "NOT shown to be informative"
        lines.append(f"- {stage}: {verdict}")
        lines += [f"  - {reason}" for reason in v.get("judge_gate_reasons", [])]
    return "\n".join(lines) + "\n"


def write(run_dir: Path, summary: dict) -> None:
    """summary.json and summary.md in the run dir; a failure to write them is logged, never raised (the run's own
    outcome must come out)."""
    try:
        (run_dir / SUMMARY_JSON).write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
        (run_dir / SUMMARY_MD).write_text(markdown(summary), encoding="utf-8")
    except OSError as e:
        log.warning("could not write %s: %s", run_dir / SUMMARY_MD, e)


def write_run_summary(cfg: Any, run_dir: Path, stages: list[str], manifests: dict[str, dict], outcomes: dict[str, str],
                      seconds: float, error: str | None) -> dict | None:
    """Build and write the summary of a run that has ended (the runner calls it, failed or not); never raises."""
    from omegaconf import OmegaConf

    try:
        names = {"run_name": str(cfg.run_name),
                 "dataset": str(OmegaConf.select(cfg, "dataset.name", default="") or ""),
                 "model": str(OmegaConf.select(cfg, "model.name", default="") or "")}
        summary = build(run_dir, names, stages, manifests, outcomes, seconds, error)
        write(run_dir, summary)
        return summary
    except Exception as e:  # the summary must never hide the run's own outcome
        log.warning("could not write the run summary: %s", e)
        return None
