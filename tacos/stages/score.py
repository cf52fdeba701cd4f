"""Stage `score`: every clustered record gets a score from the configured scorer (tacos.strategies.scorers and
.pairwise) and its judge (tacos.judges): TACOS's contrastive comparisons inside each cluster, single-record rating
(wo_contrastive, AlpaGasus) or response length. The judge's identity key goes into the manifest; the gate's verdict
on it is computed when the run ends (tacos.judges.gate), so new measurements change it without re-scoring."""
from __future__ import annotations

from tacos.config import to_container
from tacos.judges.base import JudgeContext, judge_context
from tacos.judges.gate import gate_stats
from tacos.records import write_jsonl
from tacos.stage import StageBase, StageResult, component, empty_plan
from tacos.stage_io import POOL_STAGE, load_pool, pool_for_plan, read_clusters


class ScoreStage(StageBase):
    name, shareable, components = "score", True, ("scorer", "gate")

    def requires(self, cfg) -> list[str]:
        return [POOL_STAGE, "cluster"]

    def uses_llm(self, cfg) -> bool:
        return component(cfg, "scorer").uses_llm

    def config_slice(self, cfg) -> dict:
        scorer = component(cfg, "scorer")
        identity = scorer.identity(JudgeContext(llm=component(cfg, "llm"), seed=int(cfg.seed)))
        return {"scorer": to_container(cfg.scorer), "judge_identity": identity, "seed": int(cfg.seed)}

    def run(self, ctx) -> StageResult:
        from tacos.plots import score_distribution

        scorer = ctx.component("scorer")
        records = {r.id: r for r in load_pool(ctx)}
        with judge_context(ctx.session, ctx.paths.cache_dir, ctx.seed) as jctx:
            out = scorer.score(records, read_clusters(ctx.input_dir("cluster")), jctx)
            out.stats.update(judge_stats(scorer.judge, jctx, ctx.session))
        out.stats["score_length_spearman"] = score_length_correlation(out.rows, records)
        if out.judgments is not None:
            write_jsonl(ctx.out_dir / "judgments.jsonl", out.judgments)
        write_jsonl(ctx.out_dir / "scores.jsonl", out.rows)
        score_distribution(out.distributions, ctx.out_dir / "score_distribution.png", title=f"Scores ({scorer.name})")
        ctx.add_plot(ctx.out_dir / "score_distribution.png")
        for name, table in out.tables.items():
            ctx.add_table(name, table["columns"], table["data"])
        return StageResult(counts=out.counts, stats=out.stats)

    def plan(self, ctx) -> dict:
        """Exact when the cluster stage's output is in the run dir (for a guarded judge: an upper bound, as if the
        guard screened nothing out); otherwise an estimate from the pool size."""
        scorer = ctx.component("scorer")
        if not scorer.uses_llm:
            return empty_plan()
        jctx = JudgeContext(llm=ctx.llm, cache=None, seed=ctx.seed, progress=False)
        if (ctx.run_dir / "cluster" / "manifest.json").is_file():
            records = {r.id: r for r in pool_for_plan(ctx)}
            requests = scorer.requests(records, read_clusters(ctx.run_dir / "cluster"), jctx)
            return {**ctx.llm.forecast(requests), "exact": not scorer.judge.screens}
        pool = pool_for_plan(ctx)
        calls = scorer.estimated_calls(len(pool))
        sample = scorer.sample_requests(pool, jctx)
        fc = ctx.llm.forecast(sample) if sample else empty_plan()
        scale = calls / max(1, len(sample))
        return {"calls": calls, "cache_hits": 0, "prompt_tokens": int(fc["prompt_tokens"] * scale),
                "completion_tokens": int(fc["completion_tokens"] * scale), "usd": fc["usd"] * scale, "exact": False}


def judge_stats(judge, jctx: JudgeContext, session) -> dict:
    """What the gate needs to find this judge's measurements (and what the judge did besides chat calls)."""
    if judge is None:
        return {}
    extra = {k: v for k, v in jctx.stats.items() if k != "seconds"}
    return {**gate_stats(judge, jctx, session.identity if session is not None else None), **extra}


def score_length_correlation(rows: list[dict], records: dict) -> float | None:
    """Spearman correlation of the scores with the responses' lengths: near 1 means the judge mostly measures
    length (a selection by such scores is close to the `longest` baseline)."""
    from scipy.stats import spearmanr

    pairs = [(r["score"], len(records[r["id"]].output)) for r in rows if r["score"] is not None]
    if len(pairs) < 3 or len({p[0] for p in pairs}) < 2 or len({p[1] for p in pairs}) < 2:
        return None
    return round(float(spearmanr(*zip(*pairs)).statistic), 4)


STAGE = ScoreStage()
