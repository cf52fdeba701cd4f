"""Stage `score`: every clustered record gets a score from the configured scorer (tacos.strategies.scorers and
.pairwise): contrastive pairwise judging inside each cluster (TACOS), single-record judging (wo_contrastive,
AlpaGasus) or response length."""
from __future__ import annotations

from tacos.config import to_container
from tacos.records import write_jsonl
from tacos.stage import StageBase, StageResult, component, empty_plan
from tacos.stage_io import load_pool, pool_for_plan, read_clusters


class ScoreStage(StageBase):
    name, shareable, components = "score", True, ("scorer", "gate")

    def requires(self, cfg) -> list[str]:
        return ["data", "cluster"]

    def uses_llm(self, cfg) -> bool:
        return component(cfg, "scorer").uses_llm

    def config_slice(self, cfg) -> dict:
        return {"scorer": {**to_container(cfg.scorer), **component(cfg, "scorer").identity()}, "seed": int(cfg.seed)}

    def run(self, ctx) -> StageResult:
        from tacos.plots import score_distribution

        scorer = ctx.component("scorer")
        records = {r.id: r for r in load_pool(ctx)}
        out = scorer.score(records, read_clusters(ctx.input_dir("cluster")), ctx.session, ctx.seed)
        out.stats["score_length_spearman"] = score_length_correlation(out.rows, records)
        if scorer.uses_llm:
            out.stats.update(apply_gate(ctx, out.stats, scorer.judge_prompt_hash(out.stats["judgment"]),
                                        single=not scorer.pairwise))
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
            requests = scorer.requests(records, read_clusters(ctx.run_dir / "cluster"), ctx.seed,
                                       ctx.llm.supports_logprobs)
            return {**ctx.llm.forecast(requests), "exact": True}
        pool = pool_for_plan(ctx)
        calls = scorer.estimated_calls(len(pool))
        sample = scorer.sample_requests(pool, ctx.seed, ctx.llm.supports_logprobs)
        fc = ctx.llm.forecast(sample) if sample else empty_plan()
        scale = calls / max(1, len(sample))
        return {"calls": calls, "cache_hits": 0, "prompt_tokens": int(fc["prompt_tokens"] * scale),
                "completion_tokens": int(fc["completion_tokens"] * scale), "usd": fc["usd"] * scale, "exact": False}


def score_length_correlation(rows: list[dict], records: dict) -> float | None:
    """Spearman correlation of the scores with the responses' lengths: near 1 means the judge mostly measures
    length (a selection by such scores is close to the `longest` baseline)."""
    from scipy.stats import spearmanr

    pairs = [(r["score"], len(records[r["id"]].output)) for r in rows if r["score"] is not None]
    if len(pairs) < 3 or len({p[0] for p in pairs}) < 2 or len({p[1] for p in pairs}) < 2:
        return None
    return round(float(spearmanr(*zip(*pairs)).statistic), 4)


def apply_gate(ctx, stats: dict, prompt_hash: str, single: bool = False) -> dict:
    """The gate's verdict on this stage's judge (tacos.eval.gate): logged now, repeated at the end of the run."""
    import logging

    from tacos.eval.gate import find, judge_gate
    from tacos.stage import StageError

    gate = ctx.component("gate")
    verdict = judge_gate(stats, stats["judgment"], find(gate.measurements, ctx.llm.identity, prompt_hash,
                                                        stats["judgment"]), gate, single=single)
    if not verdict["judge_informative"]:
        message = (f"{ctx.name}: the judge {ctx.llm.identity} is not shown to be informative: "
                   + "; ".join(verdict["judge_gate_reasons"]))
        if gate.on_fail == "error":
            raise StageError(message + " (gate.on_fail=error; set gate.on_fail=warn to go on)")
        logging.getLogger(__name__).warning(message)
    return {"judge_llm": ctx.llm.identity, **verdict}


STAGE = ScoreStage()
