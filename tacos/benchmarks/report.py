"""Collect the results of one run dir or of a whole sweep dir into the paper's table.

A run dir is any folder holding stage folders: <run>/<stage>/manifest.json whose "stage" names that folder (the
report's own folder aside). From each:
  * judge manifest stats.report_rows: bench -> the rows its benchmark gave for the table (Benchmark.summary: against
    whom, CSV columns, markdown cells; tacos.benchmarks.base.ReportRow): the report knows no benchmark by name;
  * names from <run>/summary.json (written when a run ends, names resolved), else <run>/.hydra/config.yaml resolved
    (run_name, dataset.name, selection.name, model.name), else from the folder and manifests;
  * selection facts from the select/export manifests and LLM calls and cost summed over every stage.
Results: one row per (run, model, baseline); a benchmark's row against no baseline (MT-Bench) repeats on every row of
its run. The columns are the union of the benchmarks' columns, in the order they first appear. Figures:
win_tie_lose.png and comparison.png (the runs side by side: win rates, and what each subset prefers).
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

# The report stage's own folder: it does not make a folder a run dir (a sweep dir with its report is not a run).
REPORT_DIR = "report"
RESULT_HEAD = ["run", "dataset", "selection", "model", "baseline"]  # then each benchmark's columns, then RESULT_TAIL
RESULT_TAIL = ["judge_informative"]
SUMMARY_COLUMNS = ["run", "dataset", "selection", "selected", "subset_sha256", "llm_calls", "cost_usd", "judged",
                   "scorer_informative", *(f"{k}_{w}" for k in ("mean_chars", "markdown") for w in ("selected", "pool")),
                   "score_length_rho"]
# What the subset prefers (select manifest stats.prefers, tacos.method.subset_stats), in SUMMARY_COLUMNS' order.
PREFERS = ("mean_response_chars_selected", "mean_response_chars_pool", "markdown_share_selected", "markdown_share_pool",
           "score_length_spearman")
FIGURES = ("win_tie_lose.png", "comparison.png")  # written by write_report next to report.md
NOT_INFORMATIVE = "(!)"  # marks results whose judge did not pass the gate (tacos.judges.gate)


@dataclass
class RunInfo:
    path: Path
    label: str  # path relative to the collected root, or the run name for the root itself
    manifests: dict[str, dict] = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # .hydra/config.yaml, when present

    @property
    def run_name(self) -> str:
        summary = _read_json(self.path / "summary.json")
        return str(summary.get("run_name") or self._resolved("run_name") or self.label)

    @property
    def dataset(self) -> str:
        summary = _read_json(self.path / "summary.json")
        return str(summary.get("dataset") or self._resolved("dataset.name") or "")

    @property
    def selection(self) -> str:
        return str(self._resolved("selection.name") or "")

    def _resolved(self, key: str):
        """A value of the run's saved config with its interpolations resolved (Hydra saves them unresolved:
        run_name reads ${dataset.name}-tacos there); None when it cannot be resolved here."""
        if not self.config:
            return None
        from omegaconf import OmegaConf

        import tacos.config  # noqa: F401  (registers the tacos_* resolvers)

        try:
            value = OmegaConf.select(OmegaConf.create(self.config), key, default=None)
        except Exception:
            return None
        return None if value is None else str(value)

    def judge_informative(self, stage: str) -> bool | None:
        """The gate's verdict on a stage's judge when the run last ended (<run_dir>/gate.json)."""
        import json

        p = self.path / "gate.json"
        return (json.loads(p.read_text(encoding="utf-8")).get(stage) or {}).get("judge_informative") \
            if p.is_file() else None

    @property
    def model(self) -> str:
        infer = self.manifests.get("infer", {}).get("stats", {})
        return str(infer.get("model_id") or (self.config.get("model") or {}).get("name") or "")


def find_runs(root: Path) -> list[RunInfo]:
    """Every folder at or below root that holds at least one complete stage folder, sorted by path."""
    root = Path(root)
    runs = []
    for folder, dirs, _ in os.walk(root):
        here = Path(folder)
        found = {d: m for d in dirs if d != REPORT_DIR and (m := _stage_manifest(here / d)) is not None}
        # Never descend into stage folders (answers, judgments), hidden folders (.hydra, .infer_work) or W&B logs.
        dirs[:] = sorted(d for d in dirs if d not in found and d != REPORT_DIR and not d.startswith(".")
                         and d != "wandb")
        if found:
            rel = here.relative_to(root).as_posix()
            runs.append(RunInfo(path=here, label=rel if rel != "." else here.name, manifests=found,
                                config=_hydra_config(here)))
    return sorted(runs, key=lambda r: r.label)


def _stage_manifest(folder: Path) -> dict | None:
    """The manifest of a complete stage folder (one that names this folder as its stage), else None."""
    p = folder / "manifest.json"
    if not p.is_file():
        return None
    manifest = _read_json(p)
    return manifest if isinstance(manifest, dict) and manifest.get("stage") == folder.name else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _hydra_config(run: Path) -> dict:
    p = run / ".hydra" / "config.yaml"
    if not p.is_file():
        return {}
    import yaml

    try:
        return yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return {}


@dataclass
class Results:
    """The results table: CSV columns and rows, markdown headers and rows (one per run x baseline)."""

    columns: list[str]
    rows: list[list]
    headers: list[str]
    cells: list[list[str]]


def _union(keys: list[list[str]]) -> list[str]:
    return list(dict.fromkeys(k for ks in keys for k in ks))


def result_rows(runs: list[RunInfo]) -> Results:
    """One row per (run, baseline) for every run with a judge manifest, from its benchmarks' report rows."""
    per_run = []
    for run in runs:
        stats = run.manifests.get("judge", {}).get("stats")
        if not stats:
            continue
        rows = [r for bench_rows in (stats.get("report_rows") or {}).values() for r in bench_rows]
        joined = [r for r in rows if not r["vs"]]  # against no baseline: joined to every row of the run
        by_vs: dict[str, dict] = {}
        for r in rows:
            if r["vs"]:
                slot = by_vs.setdefault(r["vs"], {"columns": {}, "cells": {}})
                slot["columns"].update(r["columns"])
                slot["cells"].update(r["cells"])
        for vs, slot in sorted(by_vs.items()) or [("", {"columns": {}, "cells": {}})]:
            columns, cells = {}, {}
            for r in joined:
                columns.update(r["columns"])
                cells.update(r["cells"])
            per_run.append((run, vs, {**columns, **slot["columns"]}, {**cells, **slot["cells"]}))
    columns = _union([list(c) for *_, c, _ in per_run])
    headers = _union([list(h) for *_, h in per_run])
    return Results(
        columns=[*RESULT_HEAD, *columns, *RESULT_TAIL],
        rows=[[run.run_name, run.dataset, run.selection, run.model, vs, *(c.get(k) for k in columns),
               run.judge_informative("judge")] for run, vs, c, _ in per_run],
        headers=["Run", "Dataset", "Selection", "Model", "vs", *headers],
        cells=[[run.run_name, run.dataset or "–", run.selection, run.model,
                (vs or "–") + (f" {NOT_INFORMATIVE}" if run.judge_informative("judge") is False else ""),
                *(h.get(k, "–") for k in headers)] for run, vs, _, h in per_run])


def summary_rows(runs: list[RunInfo]) -> list[list]:
    """SUMMARY_COLUMNS rows for every run that selected a subset (judged or not)."""
    rows = []
    for run in runs:
        select, export = run.manifests.get("select"), run.manifests.get("export", {})
        if select is None:
            continue
        llm = [m.get("llm") or {} for m in run.manifests.values()]
        sha = export.get("stats", {}).get("subset_sha256")
        prefers = select.get("stats", {}).get("prefers") or {}
        rows.append([run.run_name, run.dataset, run.selection, select.get("counts", {}).get("selected"),
                     sha[:16] if sha else None, sum(int(x.get("calls", 0)) for x in llm),
                     round(sum(float(x.get("cost_usd", 0.0)) for x in llm), 6), "judge" in run.manifests,
                     run.judge_informative("score"), *(prefers.get(k) for k in PREFERS)])
    return rows


def write_csv(path: Path, columns: list[str], rows: list[list]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows([["" if v is None else v for v in row] for row in rows])


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def markdown(results: Results, summary: list[list], root: Path) -> str:
    """The paper's layout: one row per selection x model x baseline, each benchmark's cells (MT-Bench score, W/T/L
    (score) per test set, AlpacaEval 2's win rates, ...)."""
    lines = [f"# TACOS results: {root}", ""]
    if results.rows:
        lines += ["| " + " | ".join(results.headers) + " |", "|" + "---|" * len(results.headers)]
        lines += ["| " + " | ".join(r) + " |" for r in results.cells]
        if any(r[-1] is False for r in results.rows):
            lines += ["", f"{NOT_INFORMATIVE}: the judge did not pass the gate (not measured above chance on labelled "
                          f"pairs, or it follows position): these numbers do not show which model is better."]
    else:
        lines.append("No judge results found (no <run>/judge/manifest.json).")
    lines += ["", "## Selection runs", ""]
    if summary:
        lines += ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * len(SUMMARY_COLUMNS)]
        lines += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in summary]
    else:
        lines.append("No selection runs found (no <run>/select/manifest.json).")
    return "\n".join(lines) + "\n"


def write_report(root: Path, out: Path, runs: list[RunInfo] | None = None) -> dict:
    """Collect root (or the given runs found in it) into out/report.md, out/report.csv and out/summary.csv; return
    the tables and counts."""
    runs = find_runs(root) if runs is None else runs
    results, summary = result_rows(runs), summary_rows(runs)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "report.csv", results.columns, results.rows)
    write_csv(out / "summary.csv", SUMMARY_COLUMNS, summary)
    text = markdown(results, summary, root)
    (out / "report.md").write_text(text, encoding="utf-8")
    plots = write_figures(results, summary, out)
    return {"runs": len(runs), "judged_runs": sum("judge" in r.manifests for r in runs), "results": results.rows,
            "result_columns": results.columns, "summary": summary, "markdown": text, "plots": plots}


def _labels(names: list[str]) -> list[str]:
    """Row labels for figures: a name that occurs twice gets #2, #3 (run names of older sweeps may repeat)."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return out


def write_figures(results: Results, summary: list[list], out: Path) -> list[Path]:
    """FIGURES: the W/T/L of every judged run against each baseline (summed over the test sets), and the runs side by
    side: win rate (wins + ties/2 over all questions) per run and baseline, then what each subset prefers (mean
    response length, markdown share, score–length rho) against its pool. W/T/L: every `<set>_win|tie|lose` column."""
    from tacos.plots import sweep_comparison, win_tie_lose_bar

    wtl, rates = {}, {}
    col = {c: i for i, c in enumerate(results.columns)}  # by name: the column layout depends on the benchmarks
    names = [f"{r[col['run']]} ({r[col['model']]}) vs {r[col['baseline']] or '–'}" for r in results.rows]
    for label, r in zip(_labels(names), results.rows):
        counts = [sum(int(r[i] or 0) for c, i in col.items() if c.endswith(f"_{part}"))
                  for part in ("win", "tie", "lose")]
        wtl[label] = tuple(counts)
        rates[label] = (counts[0] + counts[1] / 2) / sum(counts) if sum(counts) else None
    i = SUMMARY_COLUMNS.index("mean_chars_selected")
    subsets = {label: dict(zip(("chars_selected", "chars_pool", "markdown_selected", "markdown_pool", "rho"),
                               r[i:i + len(PREFERS)]))
               for label, r in zip(_labels([str(r[0]) for r in summary]), summary)}
    return [win_tie_lose_bar(wtl, out / FIGURES[0], title="Pairwise W/T/L per run and baseline (all test sets)"),
            sweep_comparison(rates, subsets, out / FIGURES[1])]
