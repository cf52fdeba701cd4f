"""Stage `cluster`: the configured clusterer (tacos.strategies.clusterers) groups the pool; writes the clusters,
every record's label set (and whether it was kept after label-set dedup) and, for tag clusterers, each tag's
cluster."""
from __future__ import annotations

import json

from tacos.config import to_container
from tacos.records import iter_jsonl, write_jsonl
from tacos.stage import StageBase, StageError, StageResult, component
from tacos.stage_io import POOL_STAGE, load_pool, write_clusters


class ClusterStage(StageBase):
    name, shareable, components = "cluster", True, ("clustering",)

    def requires(self, cfg) -> list[str]:
        return [POOL_STAGE, "normalize"] if component(cfg, "clustering").needs_tags else [POOL_STAGE]

    def config_slice(self, cfg) -> dict:
        return {"clustering": to_container(cfg.clustering), "seed": int(cfg.seed)}

    def run(self, ctx) -> StageResult:
        from tacos.plots import cluster_size_bar

        records = load_pool(ctx)
        method = ctx.component("clustering")
        record_tags = forms = None
        if method.needs_tags:
            norm_dir = ctx.input_dir("normalize")
            record_tags = {row["id"]: row["tags"] for row in iter_jsonl(norm_dir / "record_tags.jsonl")}
            forms = json.loads((norm_dir / "surface_forms.json").read_text(encoding="utf-8"))
        try:
            result = method.cluster(records, record_tags, forms, ctx.seed)
        except ValueError as e:
            raise StageError(str(e)) from e
        if result.tag_rows is not None:
            write_jsonl(ctx.out_dir / "tag_clusters.jsonl", result.tag_rows)
        write_jsonl(ctx.out_dir / "label_sets.jsonl", result.label_rows)
        write_clusters(ctx.out_dir, result.clusters)
        sizes = {c: len(ids) for c, ids in result.clusters.items()}
        cluster_size_bar(sizes, ctx.out_dir / "cluster_sizes.png", title=f"Cluster sizes ({method.name})")
        ctx.add_plot(ctx.out_dir / "cluster_sizes.png")
        kept = sum(1 for r in result.label_rows if r["kept"])
        return StageResult(
            counts={"records": len(records), "labelled": len(result.label_rows), "kept_after_dedup": kept,
                    "clusters": len(result.clusters), "memberships": sum(sizes.values())},
            stats={**result.stats, "largest_cluster": max(sizes.values(), default=0),
                   "smallest_cluster": min(sizes.values(), default=0)})


STAGE = ClusterStage()
