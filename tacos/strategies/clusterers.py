"""Clusterers (config group `clustering`): group the pool so that scoring compares like with like.

`TagKMeans` embeds the unique canonical tags, K-means them, gives each record the label set of its tags' clusters,
keeps one record per identical label set (the longest response) and lets a record belong to every cluster of its
label set. `WholePool` is the wo_cluster ablation: one cluster, no tags needed.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from tacos.records import Record


@dataclass
class Clustering:
    clusters: dict[int, list[str]]  # cluster -> member record ids (a record may be in several)
    label_rows: list[dict]  # per record: {"id", "labels", "kept", "duplicate_of"}
    tag_rows: list[dict] | None = None  # per canonical tag: {"tag", "surface_form", "cluster", "count"}
    stats: dict = field(default_factory=dict)


class Clusterer(Protocol):
    name: str
    needs_tags: bool  # reads the normalize stage's canonical tags

    def validate(self) -> None: ...
    def cluster(self, records: list[Record], record_tags: dict[str, list[str]] | None,
                surface_forms: dict[str, str] | None, seed: int) -> Clustering: ...


@dataclass
class TagKMeans:
    name: str = "kmeans"
    embedding_model: str = "all-MiniLM-L6-v2"
    k: int = 50
    algorithm: str = "kmeans"
    n_init: int = 10
    weight_by_frequency: bool = True
    batch_size: int = 128
    dedup_label_sets: bool = True
    scale_k: bool = True  # small pools: k = min(k, ceil(sqrt(unique tags))), so clusters are not mostly singletons

    needs_tags = True

    def validate(self) -> None:
        if self.k < 1:
            raise ValueError("clustering.k must be >= 1")
        if self.algorithm not in ("kmeans", "minibatch"):
            raise ValueError(f"clustering.algorithm must be kmeans or minibatch, not {self.algorithm!r}")

    def cluster(self, records: list[Record], record_tags: dict[str, list[str]] | None,
                surface_forms: dict[str, str] | None, seed: int) -> Clustering:
        import numpy as np

        from tacos.method.clustering import (cluster_embeddings, cluster_members, dedup_by_label_set, embed_texts,
                                             label_sets, resolve_embedding_model, tag_labels)

        record_tags, forms = record_tags or {}, surface_forms or {}
        counts = Counter(t for tags in record_tags.values() for t in tags)
        unique = sorted(counts)
        if not unique:
            raise ValueError("cluster: no tag survived normalization; lower normalize.alpha or tag more records")
        emb = embed_texts([forms.get(t, t) for t in unique], resolve_embedding_model(self.embedding_model),
                          batch_size=self.batch_size)
        weights = np.array([counts[t] for t in unique], dtype=float) if self.weight_by_frequency else None
        k = min(self.k, math.ceil(math.sqrt(len(unique)))) if self.scale_k else self.k
        labels = cluster_embeddings(emb, k=k, seed=seed, algorithm=self.algorithm, n_init=self.n_init,
                                    sample_weight=weights)
        tag_label = tag_labels(unique, labels)
        tag_rows = [{"tag": t, "surface_form": forms.get(t, t), "cluster": int(tag_label[t]), "count": counts[t]}
                    for t in unique]
        order = [r.id for r in records if r.id in record_tags]
        sets = label_sets(record_tags, tag_label)
        if self.dedup_label_sets:
            kept, dropped = dedup_by_label_set(sets, {r.id: len(r.output) for r in records}, order)
        else:
            kept, dropped = order, {}
        rows = [{"id": i, "labels": list(sets[i]), "kept": i not in dropped, "duplicate_of": dropped.get(i)}
                for i in order]
        stats = {"k": int(len(set(int(x) for x in labels))), "k_configured": self.k, "k_requested": k,
                 "scale_k": self.scale_k, "unique_tags": len(unique)}
        return Clustering(cluster_members(sets, kept), rows, tag_rows, stats)


@dataclass
class WholePool:
    name: str = "none"

    needs_tags = False

    def validate(self) -> None:
        return None

    def cluster(self, records: list[Record], record_tags=None, surface_forms=None, seed: int = 0) -> Clustering:
        return Clustering({0: [r.id for r in records]},
                          [{"id": r.id, "labels": [0], "kept": True, "duplicate_of": None} for r in records],
                          None, {"k": 1, "unique_tags": 0})
