"""Stage `report`: the results of this run dir (or, with hydra.run.dir pointing at a sweep dir, of every run below
it) as the paper's table: report.md, report.csv (results), summary.csv (selection runs) and W&B tables.

The report is a view over whatever judge results exist when it runs, so it always runs again (its identity carries
the collection time); `tacos report DIR` writes the same files without a Hydra run.
"""
from __future__ import annotations

from datetime import datetime, timezone

COMPONENTS = ()


def requires(cfg) -> list[str]:
    return []


def uses_llm(cfg) -> bool:
    return False


def config_slice(cfg) -> dict:
    return {"collected_at": datetime.now(timezone.utc).isoformat(timespec="microseconds")}


def run(ctx) -> dict:
    from tacos.eval.results import RESULT_COLUMNS, SUMMARY_COLUMNS, write_report

    rep = write_report(ctx.run_dir, ctx.out_dir)
    ctx.add_table("results", RESULT_COLUMNS, rep["results"])
    ctx.add_table("summary", SUMMARY_COLUMNS, rep["summary"])
    return {"counts": {"runs": rep["runs"], "judged_runs": rep["judged_runs"], "result_rows": len(rep["results"]),
                       "selection_runs": len(rep["summary"])},
            "stats": {"root": str(ctx.run_dir)}}
