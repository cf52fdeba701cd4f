"""Stage `clean`: the configured checks (tacos.cleaning) remove the rows with a real-data defect; every later stage
reads the rows kept here (tacos.stage_io.load_pool). Each removed row is listed with every check it failed. Model
checks (e.g. wrong_answer) ask the run's LLM session: their calls are counted in the manifest like any stage's, every
row they asked about is in model_checks.jsonl, and a row they could not judge is kept and listed in unjudged.jsonl."""
from __future__ import annotations

from tacos.cleaning import CleanContext
from tacos.config import to_container
from tacos.records import write_jsonl
from tacos.stage import StageBase, StageResult, component, empty_plan
from tacos.stage_io import load_raw_pool, raw_pool_for_plan


class CleanStage(StageBase):
    name, shareable, components = "clean", True, ("clean",)

    def requires(self, cfg) -> list[str]:
        return ["data"]

    def uses_llm(self, cfg) -> bool:
        return component(cfg, "clean").uses_llm

    def config_slice(self, cfg) -> dict:
        identity = component(cfg, "clean").identity()
        out = {"clean": to_container(cfg.clean)}
        return {**out, "model_checks": identity, "seed": int(cfg.seed)} if identity else out

    def run(self, ctx) -> StageResult:
        records = load_raw_pool(ctx)
        cleaner = ctx.component("clean")
        cctx = CleanContext(llm=ctx.session, seed=ctx.seed)
        result = cleaner.clean(records, cctx)
        write_jsonl(ctx.out_dir / "records.jsonl", result.kept)
        write_jsonl(ctx.out_dir / "removed.jsonl", result.removed)
        counts = {"records": len(records), "kept": len(result.kept), "removed": len(result.removed),
                  "by_check": result.counts}
        if cleaner.uses_llm:
            write_jsonl(ctx.out_dir / "model_checks.jsonl", result.model_rows)
            write_jsonl(ctx.out_dir / "unjudged.jsonl", result.unjudged)
            asked = {(m["check"], m["id"]) for m in result.model_rows + result.unjudged}
            counts.update(model_asked=len(asked), model_unjudged=len(result.unjudged),
                          model_checks_skipped=result.skipped)
        return StageResult(counts=counts, stats={"removed_rate": round(len(result.removed) / max(1, len(records)), 4),
                                                 **cctx.stats})

    def plan(self, ctx) -> dict:
        cleaner = ctx.component("clean")
        if not cleaner.uses_llm:
            return empty_plan()
        return {**ctx.llm.forecast(cleaner.requests(raw_pool_for_plan(ctx), ctx.seed)), "exact": True}


STAGE = CleanStage()
