"""Stage `select`: the configured selector (tacos.strategies.selectors) picks the subset; every selected record
carries its rationale (cluster, score, CI, rank, reason). stats.prefers says what the subset prefers against the pool
(length, markdown, score–length rho: tacos.method.subset_stats)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from tacos.config import to_container
from tacos.method.subset_stats import subset_preferences
from tacos.records import Record, iter_jsonl, write_jsonl
from tacos.stage import StageBase, StageResult, component, files_read
from tacos.stage_io import POOL_STAGE, load_pool


class SelectStage(StageBase):
    name, shareable, components = "select", True, ("selection",)

    def requires(self, cfg) -> list[str]:
        # A selector that reads "data" reads the pool, which is the clean stage's output.
        return [POOL_STAGE if s == "data" else s for s in component(cfg, "selection").inputs]

    def config_slice(self, cfg) -> dict:
        selection = {**to_container(cfg.selection), **component(cfg, "selection").identity()}
        selection.pop("path", None)  # an external file is identified by its content (identity), not its path
        # the released subsets its overlap stats compare against (data/reference_sets/*.ids)
        released = Path(component(cfg, "paths").data_dir) / "reference_sets"
        return {"selection": selection, "seed": int(cfg.seed),
                "reference_sets": files_read({f.name: f for f in sorted(released.glob("*.ids"))})}

    def run(self, ctx) -> StageResult:
        from tacos.plots import length_distribution

        selector = ctx.component("selection")
        pool = load_pool(ctx) if "data" in selector.inputs else None
        scores = list(iter_jsonl(ctx.input_dir("score") / "scores.jsonl")) if "score" in selector.inputs else None
        pool, chosen = selector.select(pool, scores, ctx.seed)
        unscored = unscored_ids(scores or [], {s.id for s in chosen})
        if unscored:  # never validly judged: not ranked among judged rows, and listed here
            write_jsonl(ctx.out_dir / "excluded.jsonl", ({"id": i, "reason": why_unscored(i, scores)} for i in unscored))
        by_id: dict[str, Record] = {r.id: r for r in pool}
        write_jsonl(ctx.out_dir / "selected.jsonl", ({**asdict(by_id[s.id]), "selection": asdict(s)} for s in chosen))
        length_distribution([len(r.output) for r in pool], [len(by_id[s.id].output) for s in chosen],
                            ctx.out_dir / "length_distribution.png",
                            title=f"Response length: selected vs pool ({selector.name})")
        ctx.add_plot(ctx.out_dir / "length_distribution.png")
        overlap = reference_overlap({r.id for r in pool}, [s.id for s in chosen], Path(ctx.paths.data_dir))
        if overlap:
            (ctx.out_dir / "reference_overlap.json").write_text(json.dumps(overlap, indent=1) + "\n", encoding="utf-8")
        budget = selector.budget if selector.budget is not None else len(pool)
        mean = lambda xs: round(sum(xs) / max(1, len(xs)), 1)  # noqa: E731
        prefers = subset_preferences({r.id: r.output for r in pool}, [s.id for s in chosen], scores)
        return StageResult(
            counts={"pool": len(pool), "selected": len(chosen), "budget": int(budget),
                    "excluded_unscored": len(unscored)},
            stats={"budget_met": len(chosen) == int(budget),
                   "mean_output_chars_selected": mean([len(by_id[s.id].output) for s in chosen]),
                   "mean_output_chars_pool": mean([len(r.output) for r in pool]),
                   "clusters_represented": len({s.cluster for s in chosen if s.cluster is not None}),
                   "prefers": prefers,
                   **({"overlap_with_released": overlap} if overlap else {})})


def unscored_ids(scores: list[dict], chosen: set[str]) -> list[str]:
    """Records with no score in any of their clusters (a record of several clusters may be scored in one only)."""
    scored = {r["id"] for r in scores if r["score"] is not None}
    return sorted({r["id"] for r in scores} - scored - chosen)


def why_unscored(record_id: str, scores: list[dict]) -> str:
    """The judge's guard screened it out (with the reason); or a pairwise scorer could not judge it, alone in each of
    its clusters; or its judgments were all invalid (or it had no judge at all)."""
    screened = next((row["screened"] for row in scores if row["id"] == record_id and row.get("screened")), None)
    if screened:
        return f"screened: {screened}"
    size: dict = {}
    for row in scores:
        size[row.get("cluster")] = size.get(row.get("cluster"), 0) + 1
    clusters = [row.get("cluster") for row in scores if row["id"] == record_id]
    if clusters and all(c is not None and size[c] == 1 for c in clusters):
        return "alone in its cluster: no other record to be compared with"
    return "no valid judgment"


def reference_overlap(pool: set[str], chosen: list[str], data_dir: Path) -> dict:
    """Overlap of the selection with each released subset (data/reference_sets/*.ids, by content id), next to what a
    random selection of the same size from the same pool would share: the hypergeometric mean and 95% range. A
    selection inside that range agrees with the released one no better than chance."""
    from scipy.stats import hypergeom

    out = {}
    ids = set(chosen)
    for f in sorted((data_dir / "reference_sets").glob("*.ids")):
        ref = {line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()}
        in_pool, shared = len(pool & ref), len(ids & ref)
        # no released row in the pool: nothing to share by chance (and scipy warns on that degenerate case)
        chance = hypergeom(len(pool), in_pool, len(ids)) if pool and in_pool else None
        lo, hi = (int(chance.ppf(0.025)), int(chance.ppf(0.975))) if chance else (0, 0)
        out[f.stem] = {"shared": shared, "fraction_of_selected": round(shared / max(1, len(ids)), 4),
                       "released_in_pool": in_pool, "expected_if_random": round(chance.mean(), 2) if chance else 0.0,
                       "random_95_range": [lo, hi], "above_chance": shared > hi}
    return out


STAGE = SelectStage()
