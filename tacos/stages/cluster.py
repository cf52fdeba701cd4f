"""Stage `cluster`: embed unique canonical tags, K-means them, label sets, dedup by label set, overlapping membership.

`clustering=none` (the wo_cluster ablation) puts the whole pool in one cluster and needs no tags.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass

from tacos.config import to_container
from tacos.records import iter_jsonl, write_jsonl
from tacos.stages.common import load_pool

COMPONENTS = ("clustering",)
SHAREABLE = True  # output depends only on config + inputs: computed once across runs (tacos.store)


@dataclass
class TagClustering:
    name: str = "kmeans"
    embedding_model: str = "all-MiniLM-L6-v2"
    k: int = 50
    algorithm: str = "kmeans"
    n_init: int = 10
    weight_by_frequency: bool = True
    batch_size: int = 128
    dedup_label_sets: bool = True
    scale_k: bool = True  # small pools: k = min(k, ceil(sqrt(unique tags))), so clusters are not mostly singletons

    def validate(self) -> None:
        if self.k < 1:
            raise ValueError("clustering.k must be >= 1")
        if self.algorithm not in ("kmeans", "minibatch"):
            raise ValueError(f"clustering.algorithm must be kmeans or minibatch, not {self.algorithm!r}")


@dataclass
class WholePool:
    name: str = "none"


def _is_whole_pool(cfg) -> bool:
    return cfg.clustering._target_.endswith("WholePool")


def requires(cfg) -> list[str]:
    return ["data"] if _is_whole_pool(cfg) else ["data", "normalize"]


def uses_llm(cfg) -> bool:
    return False


def config_slice(cfg) -> dict:
    return {"clustering": to_container(cfg.clustering), "seed": int(cfg.seed)}


def run(ctx) -> dict:
    from tacos.plots import cluster_size_bar

    records = load_pool(ctx)
    method = ctx.component("clustering")
    if isinstance(method, WholePool):
        clusters = {0: [r.id for r in records]}
        label_rows = [{"id": r.id, "labels": [0], "kept": True, "duplicate_of": None} for r in records]
        stats = {"k": 1, "unique_tags": 0}
    else:
        clusters, label_rows, stats = _tag_clusters(ctx, method, records)
    write_jsonl(ctx.out_dir / "label_sets.jsonl", label_rows)
    (ctx.out_dir / "clusters.json").write_text(
        json.dumps({str(c): ids for c, ids in sorted(clusters.items())}, indent=1) + "\n", encoding="utf-8")
    sizes = {c: len(ids) for c, ids in clusters.items()}
    cluster_size_bar(sizes, ctx.out_dir / "cluster_sizes.png", title=f"Cluster sizes ({method.name})")
    ctx.add_plot(ctx.out_dir / "cluster_sizes.png")
    kept = sum(1 for r in label_rows if r["kept"])
    return {
        "counts": {"records": len(records), "labelled": len(label_rows), "kept_after_dedup": kept,
                   "clusters": len(clusters), "memberships": sum(sizes.values())},
        "stats": {**stats, "largest_cluster": max(sizes.values(), default=0),
                  "smallest_cluster": min(sizes.values(), default=0)},
    }


def _tag_clusters(ctx, method: TagClustering, records) -> tuple[dict[int, list[str]], list[dict], dict]:
    import numpy as np

    from tacos.method.clustering import (cluster_embeddings, cluster_members, dedup_by_label_set, embed_texts,
                                         label_sets, resolve_embedding_model, tag_labels)

    norm_dir = ctx.input_dir("normalize")
    record_tags = {row["id"]: row["tags"] for row in iter_jsonl(norm_dir / "record_tags.jsonl")}
    forms = json.loads((norm_dir / "surface_forms.json").read_text(encoding="utf-8"))
    counts = Counter(t for tags in record_tags.values() for t in tags)
    unique = sorted(counts)
    if not unique:
        from tacos.pipeline import StageError

        raise StageError("cluster: no tag survived normalization; lower normalize.alpha or tag more records")
    emb = embed_texts([forms.get(t, t) for t in unique], resolve_embedding_model(method.embedding_model),
                      batch_size=method.batch_size)
    weights = np.array([counts[t] for t in unique], dtype=float) if method.weight_by_frequency else None
    k = min(method.k, math.ceil(math.sqrt(len(unique)))) if method.scale_k else method.k
    labels = cluster_embeddings(emb, k=k, seed=int(ctx.cfg.seed), algorithm=method.algorithm,
                                n_init=method.n_init, sample_weight=weights)
    tag_label = tag_labels(unique, labels)
    write_jsonl(ctx.out_dir / "tag_clusters.jsonl",
                ({"tag": t, "surface_form": forms.get(t, t), "cluster": int(tag_label[t]), "count": counts[t]}
                 for t in unique))
    order = [r.id for r in records if r.id in record_tags]
    sets = label_sets(record_tags, tag_label)
    out_len = {r.id: len(r.output) for r in records}
    if method.dedup_label_sets:
        kept, dropped = dedup_by_label_set(sets, out_len, order)
    else:
        kept, dropped = order, {}
    members = cluster_members(sets, kept)
    rows = [{"id": i, "labels": list(sets[i]), "kept": i not in dropped, "duplicate_of": dropped.get(i)} for i in order]
    return members, rows, {"k": int(len(set(int(x) for x in labels))), "k_configured": method.k, "k_requested": k,
                           "unique_tags": len(unique)}
