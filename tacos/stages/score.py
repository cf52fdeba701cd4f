"""Stage `score`: every clustered record gets a score from the configured scorer (tacos.strategies.scorers and
.pairwise): contrastive pairwise judging inside each cluster (TACOS), single-record judging (wo_contrastive,
AlpaGasus) or response length."""
from __future__ import annotations

from tacos.config import to_container
from tacos.records import write_jsonl
from tacos.stage import StageBase, StageResult, component, empty_plan
from tacos.stages.cluster import read_clusters
from tacos.stages.common import load_pool, pool_for_plan


class ScoreStage(StageBase):
    name, shareable, components = "score", True, ("scorer",)

    def requires(self, cfg) -> list[str]:
        return ["data", "cluster"]

    def uses_llm(self, cfg) -> bool:
        return component(cfg, "scorer").uses_llm

    def config_slice(self, cfg) -> dict:
        return {"scorer": {**to_container(cfg.scorer), **component(cfg, "scorer").identity()}, "seed": int(cfg.seed)}

    def run(self, ctx) -> StageResult:
        from tacos.plots import score_distribution

        scorer = ctx.component("scorer")
        out = scorer.score({r.id: r for r in load_pool(ctx)}, read_clusters(ctx.input_dir("cluster")), ctx.session,
                           ctx.seed)
        if out.judgments is not None:
            write_jsonl(ctx.out_dir / "judgments.jsonl", out.judgments)
        write_jsonl(ctx.out_dir / "scores.jsonl", out.rows)
        score_distribution(out.distributions, ctx.out_dir / "score_distribution.png", title=f"Scores ({scorer.name})")
        ctx.add_plot(ctx.out_dir / "score_distribution.png")
        for name, table in out.tables.items():
            ctx.add_table(name, table["columns"], table["data"])
        return StageResult(counts=out.counts, stats=out.stats)

    def plan(self, ctx) -> dict:
        """Exact when the cluster stage's output is in the run dir; otherwise an estimate from the pool size."""
        scorer = ctx.component("scorer")
        if not scorer.uses_llm:
            return empty_plan()
        if (ctx.run_dir / "cluster" / "manifest.json").is_file():
            records = {r.id: r for r in pool_for_plan(ctx)}
            requests = scorer.requests(records, read_clusters(ctx.run_dir / "cluster"), ctx.seed)
            return {**ctx.llm.forecast(requests), "exact": True}
        pool = pool_for_plan(ctx)
        calls, sample = scorer.estimated_calls(len(pool)), scorer.sample_requests(pool, ctx.seed)
        fc = ctx.llm.forecast(sample) if sample else empty_plan()
        scale = calls / max(1, len(sample))
        return {"calls": calls, "cache_hits": 0, "prompt_tokens": int(fc["prompt_tokens"] * scale),
                "completion_tokens": int(fc["completion_tokens"] * scale), "usd": fc["usd"] * scale, "exact": False}


STAGE = ScoreStage()
