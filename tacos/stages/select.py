"""Stage `select`: the configured selector (tacos.strategies.selectors) picks the subset; every selected record
carries its rationale (cluster, score, CI, rank, reason)."""
from __future__ import annotations

from dataclasses import asdict

from tacos.config import to_container
from tacos.records import Record, iter_jsonl, write_jsonl
from tacos.stage import StageBase, StageResult, component
from tacos.stages.common import load_pool


class SelectStage(StageBase):
    name, shareable, components = "select", True, ("selection",)

    def requires(self, cfg) -> list[str]:
        return list(component(cfg, "selection").inputs)

    def config_slice(self, cfg) -> dict:
        selection = {**to_container(cfg.selection), **component(cfg, "selection").identity()}
        selection.pop("path", None)  # an external file is identified by its content (identity), not its path
        return {"selection": selection, "seed": int(cfg.seed)}

    def run(self, ctx) -> StageResult:
        from tacos.plots import length_distribution

        selector = ctx.component("selection")
        pool = load_pool(ctx) if "data" in selector.inputs else None
        scores = list(iter_jsonl(ctx.input_dir("score") / "scores.jsonl")) if "score" in selector.inputs else None
        pool, chosen = selector.select(pool, scores, ctx.seed)
        by_id: dict[str, Record] = {r.id: r for r in pool}
        write_jsonl(ctx.out_dir / "selected.jsonl", ({**asdict(by_id[s.id]), "selection": asdict(s)} for s in chosen))
        length_distribution([len(r.output) for r in pool], [len(by_id[s.id].output) for s in chosen],
                            ctx.out_dir / "length_distribution.png",
                            title=f"Response length: selected vs pool ({selector.name})")
        ctx.add_plot(ctx.out_dir / "length_distribution.png")
        budget = selector.budget if selector.budget is not None else len(pool)
        mean = lambda xs: round(sum(xs) / max(1, len(xs)), 1)  # noqa: E731
        return StageResult(
            counts={"pool": len(pool), "selected": len(chosen), "budget": int(budget),
                    "excluded_invalid_scores": sum(1 for r in scores or [] if r["score"] is None)},
            stats={"budget_met": len(chosen) == int(budget),
                   "mean_output_chars_selected": mean([len(by_id[s.id].output) for s in chosen]),
                   "mean_output_chars_pool": mean([len(r.output) for r in pool]),
                   "clusters_represented": len({s.cluster for s in chosen if s.cluster is not None})})


STAGE = SelectStage()
