"""Stage `report`: the results of this run dir (or, with hydra.run.dir pointing at a sweep dir, of every run below
it) as the paper's table: report.md, report.csv (results), summary.csv (selection runs), the W/T/L and comparison figures, and W&B tables.

The report is a view over whatever judge results exist when it runs, so it always runs again (its identity carries
the collection time); `tacos report DIR` writes the same files without a Hydra run (tacos.benchmarks.report).
"""
from __future__ import annotations

from datetime import datetime, timezone

from tacos.benchmarks.report import SUMMARY_COLUMNS, write_report
from tacos.stage import StageBase, StageResult


class ReportStage(StageBase):
    name = "report"

    def config_slice(self, cfg) -> dict:
        return {"collected_at": datetime.now(timezone.utc).isoformat(timespec="microseconds")}

    def run(self, ctx) -> StageResult:
        rep = write_report(ctx.run_dir, ctx.out_dir)
        ctx.add_table("results", rep["result_columns"], rep["results"])
        ctx.add_table("summary", SUMMARY_COLUMNS, rep["summary"])
        for figure in rep["plots"]:  # the W/T/L chart and the runs compared (W&B shows them as images)
            ctx.add_plot(figure)
        return StageResult(counts={"runs": rep["runs"], "judged_runs": rep["judged_runs"],
                                   "result_rows": len(rep["results"]), "selection_runs": len(rep["summary"])},
                           stats={"root": str(ctx.run_dir)})


STAGE = ReportStage()
