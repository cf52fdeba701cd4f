"""Stage `select`: pick the subset — the reference per-cluster rule (default), global top-N, or a baseline
(random, longest, AlpaGasus-style threshold, full pool, an external list such as LIMA) through the same stage.
Every selected record carries its rationale (cluster, score, CI, rank, reason)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tacos.config import to_container
from tacos.records import Record, iter_jsonl, write_jsonl
from tacos.stages.common import load_pool

COMPONENTS = ("selection",)
SHAREABLE = True  # output depends only on config + inputs: computed once across runs (tacos.store)
STRATEGIES = ("per_cluster", "global_top", "random", "longest", "threshold", "all", "external")
_SCORED = ("per_cluster", "global_top", "threshold")


@dataclass
class Selection:
    name: str = "tacos"
    strategy: str = "per_cluster"
    budget: int | None = 1000
    quota: int | str = "auto"
    cluster_order: str = "ascending_size"
    backfill: bool = True
    backfill_key: str = "raw_score"
    threshold: float | None = None
    path: str | None = None

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"selection.strategy must be one of {STRATEGIES}, not {self.strategy!r}")
        if self.strategy not in ("all", "external") and (self.budget is None or int(self.budget) < 1):
            raise ValueError(f"selection.budget must be a positive number for strategy {self.strategy!r}")
        if self.strategy == "threshold" and self.threshold is None:
            raise ValueError("selection.threshold is required for strategy 'threshold'")
        if self.strategy == "external" and not (self.path and Path(self.path).is_file()):
            raise FileNotFoundError(f"selection.path: external selection file {self.path!r} does not exist")


def requires(cfg) -> list[str]:
    strategy = cfg.selection.strategy
    if strategy == "external":
        return []
    return ["data", "score"] if strategy in _SCORED else ["data"]


def uses_llm(cfg) -> bool:
    return False


def config_slice(cfg) -> dict:
    s = to_container(cfg.selection)
    if s.get("path"):
        from tacos.records import file_sha256

        s["path"] = file_sha256(s["path"])
    return {"selection": s, "seed": int(cfg.seed)}


def run(ctx) -> dict:
    from tacos.method import selection as sel
    from tacos.plots import length_distribution

    spec: Selection = ctx.component("selection")
    seed = int(ctx.cfg.seed)
    excluded = 0
    if spec.strategy == "external":
        from tacos.data import load_records

        pool = load_records(spec.path, name=Path(spec.path).stem, on_duplicate="drop")
        chosen = [sel.Selected(id=r.id, cluster=None, score=None, rank=i, reason=f"external:{Path(spec.path).name}")
                  for i, r in enumerate(pool)]
    else:
        pool = load_pool(ctx)
        budget = int(spec.budget) if spec.budget is not None else len(pool)
        if spec.strategy == "all":
            chosen = sel.select_all([r.id for r in pool])
        elif spec.strategy == "random":
            chosen = sel.select_random([r.id for r in pool], budget, seed)
        elif spec.strategy == "longest":
            chosen = sel.select_longest({r.id: len(r.output) for r in pool}, budget)
        else:
            rows = list(iter_jsonl(ctx.input_dir("score") / "scores.jsonl"))
            excluded = sum(1 for r in rows if r["score"] is None)
            out_len = {r.id: len(r.output) for r in pool}
            cands = [sel.Candidate(id=r["id"], cluster=int(r["cluster"]), score=float(r["score"]),
                                   raw_score=r.get("raw_score"), ci_low=r.get("ci_low"), ci_high=r.get("ci_high"),
                                   output_len=out_len.get(r["id"], 0)) for r in rows if r["score"] is not None]
            if spec.strategy == "per_cluster":
                chosen = sel.select_per_cluster(cands, budget, quota=spec.quota, cluster_order=spec.cluster_order,
                                                backfill=spec.backfill, backfill_key=spec.backfill_key)
            elif spec.strategy == "global_top":
                chosen = sel.select_global_top(cands, budget)
            else:
                best: dict[str, float] = {}
                for c in cands:
                    best[c.id] = max(best.get(c.id, float("-inf")), c.score)
                chosen = sel.select_threshold_uniform(best, float(spec.threshold), budget, seed)
    by_id: dict[str, Record] = {r.id: r for r in pool}
    rows = [{**asdict(by_id[s.id]), "selection": asdict(s)} for s in chosen]
    write_jsonl(ctx.out_dir / "selected.jsonl", rows)
    length_distribution([len(r.output) for r in pool], [len(by_id[s.id].output) for s in chosen],
                        ctx.out_dir / "length_distribution.png", title=f"Response length: selected vs pool ({spec.name})")
    ctx.add_plot(ctx.out_dir / "length_distribution.png")
    budget = spec.budget if spec.budget is not None else len(pool)
    mean = lambda xs: round(sum(xs) / max(1, len(xs)), 1)  # noqa: E731
    return {
        "counts": {"pool": len(pool), "selected": len(chosen), "budget": int(budget),
                   "excluded_invalid_scores": excluded},
        "stats": {"budget_met": len(chosen) == int(budget),
                  "mean_output_chars_selected": mean([len(by_id[s.id].output) for s in chosen]),
                  "mean_output_chars_pool": mean([len(r.output) for r in pool]),
                  "clusters_represented": len({s.cluster for s in chosen if s.cluster is not None})},
    }
