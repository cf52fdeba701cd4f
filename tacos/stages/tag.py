"""Stage `tag`: every record's intention tags, from the configured tagger (tacos.strategies.taggers)."""
from __future__ import annotations

from tacos.config import to_container
from tacos.records import write_jsonl
from tacos.stage import StageBase, StageResult, component, empty_plan
from tacos.stage_io import POOL_STAGE, load_pool, pool_for_plan

_NOT_IN_TAGS_FILE = ("raw", "error")  # kept in invalid.jsonl only


class TagStage(StageBase):
    name, shareable, components = "tag", True, ("tagger",)

    def requires(self, cfg) -> list[str]:
        return [POOL_STAGE]

    def uses_llm(self, cfg) -> bool:
        return component(cfg, "tagger").uses_llm

    def config_slice(self, cfg) -> dict:
        return {**to_container(cfg.tagger), **component(cfg, "tagger").identity(), "seed": int(cfg.seed)}

    def run(self, ctx) -> StageResult:
        records = load_pool(ctx)
        tagger = ctx.component("tagger")
        rows = tagger.tag(records, ctx.session, ctx.seed)
        invalid = [{"id": r["id"], "index": r["index"], "status": r["status"], "raw": r.get("raw"),
                    "error": r.get("error")} for r in rows if r["status"] not in ("ok", "missing")]
        write_jsonl(ctx.out_dir / "tags.jsonl", ({k: v for k, v in r.items() if k not in _NOT_IN_TAGS_FILE}
                                                 for r in rows))
        write_jsonl(ctx.out_dir / "invalid.jsonl", invalid)
        ok = [r for r in rows if r["status"] == "ok"]
        n_err = sum(1 for r in rows if r["status"] == "error")
        n_tags = sum(len(r["tags"]) for r in ok)
        return StageResult(
            counts={"records": len(rows), "tagged": len(ok), "invalid": len(rows) - len(ok) - n_err, "errors": n_err,
                    "tags": n_tags},
            stats={"invalid_rate": round((len(rows) - len(ok)) / max(1, len(rows)), 4),
                   "mean_tags_per_record": round(n_tags / max(1, len(ok)), 3)})

    def plan(self, ctx) -> dict:
        tagger = ctx.component("tagger")
        if not tagger.uses_llm:
            return empty_plan()
        return {**ctx.llm.forecast(tagger.requests(pool_for_plan(ctx), ctx.seed)), "exact": True}


STAGE = TagStage()
