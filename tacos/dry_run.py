"""The dry run: forecast LLM calls, tokens, cost (and GPU hours) per stage without calling any LLM or starting a
server, the local compute in CPU-hours, and whether it fits budget.max_usd. A stage already complete here or in the
store is copied in first (as the real run would), so the forecasts of later stages read real inputs and are exact."""
from __future__ import annotations

from tacos.local_compute import budget_check, cpu_hours
from tacos.stage import StageContext, empty_plan, write_json_atomic
from tacos.stage_io import plan_pool
from tacos.stages import get_stage

FORECAST_KEYS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "usd", "gpu_hours", "cpu_hours")


def forecast(pipeline, stages: list[str]) -> dict:
    """dry_run.json of the pipeline's run dir: {stage: forecast, ..., total, budget}."""
    pipeline._open_session(stages)
    report: dict[str, dict] = {}
    pool, stand_in = None, False
    try:
        for name in stages:
            stage = get_stage(name)
            if pipeline._reusable(stage):
                report[name] = {**empty_plan(), "reused": True}
                continue
            ctx = StageContext(cfg=pipeline.cfg, run_dir=pipeline.run_dir, out_dir=pipeline.run_dir, name=name,
                               session=pipeline.session)
            if pool is None and name != "data":
                pool, stand_in = plan_pool(ctx)
            ctx.plan_pool = pool
            report[name] = stage.plan(ctx)
            if stand_in and name != "data":
                report[name]["exact"] = False
            report[name]["cpu_hours"] = cpu_hours(pipeline.cfg, name, report[name], len(pool) if pool else None)
    finally:
        if pipeline.session is not None:
            pipeline.session.cache.close()
    total = {k: sum(r.get(k, 0) for r in report.values()) for k in FORECAST_KEYS}
    total["exact"] = all(r.get("exact", True) for r in report.values())
    report["total"] = total
    report["budget"] = budget_check(report, stages, float(pipeline.cfg.budget.max_usd))
    write_json_atomic(pipeline.run_dir / "dry_run.json", report)
    return report
