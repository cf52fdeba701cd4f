"""Stage `clean`: the configured checks (tacos.cleaning) remove the rows with a real-data defect; every later stage
reads the rows kept here (tacos.stage_io.load_pool). Each removed row is listed with every check it failed."""
from __future__ import annotations

from tacos.config import to_container
from tacos.records import write_jsonl
from tacos.stage import StageBase, StageResult
from tacos.stage_io import load_raw_pool


class CleanStage(StageBase):
    name, shareable, components = "clean", True, ("clean",)

    def requires(self, cfg) -> list[str]:
        return ["data"]

    def config_slice(self, cfg) -> dict:
        return {"clean": to_container(cfg.clean)}

    def run(self, ctx) -> StageResult:
        records = load_raw_pool(ctx)
        result = ctx.component("clean").clean(records)
        write_jsonl(ctx.out_dir / "records.jsonl", result.kept)
        write_jsonl(ctx.out_dir / "removed.jsonl", result.removed)
        return StageResult(counts={"records": len(records), "kept": len(result.kept), "removed": len(result.removed),
                                   "by_check": result.counts},
                           stats={"removed_rate": round(len(result.removed) / max(1, len(records)), 4)})


STAGE = CleanStage()
