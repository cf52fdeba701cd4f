"""What a subset prefers (tacos.method.subset_stats): markdown detection, score–length rho, selected vs pool."""
from __future__ import annotations

import pytest

from tacos.method.subset_stats import has_markdown, markdown_kinds, spearman, subset_preferences


@pytest.mark.parametrize("text,kinds", [
    ("# Title\nbody", ["heading"]),
    ("Steps:\n- one\n- two", ["bullet"]),
    ("1. first\n2) second", ["numbered"]),
    ("This is **important**.", ["bold"]),
    ("```python\nprint(1)\n```", ["code_fence"]),
    ("Plain prose, 3.5 percent, a-b, #hashtag and __init__.", []),
    ("", []),
])
def test_markdown_kinds(text, kinds):
    assert markdown_kinds(text) == kinds
    assert has_markdown(text) == bool(kinds)


def test_spearman_is_undefined_on_too_few_or_constant_points():
    assert spearman([1, 2], [3, 4]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert spearman([1, 2, 3, 4], [40, 30, 20, 10]) == -1.0


def test_subset_preferences_on_toy_records():
    pool = {"a": "x" * 10, "b": "- item\n- item " + "y" * 16, "c": "z" * 50, "d": "**bold** " + "w" * 91}
    # Longer responses score higher in every cluster: rho +1 overall and within clusters.
    scores = [{"id": "a", "cluster": 0, "score": 0.1, "raw_score": 1.0},
              {"id": "b", "cluster": 0, "score": 0.5, "raw_score": 2.0},
              {"id": "c", "cluster": 0, "score": 0.9, "raw_score": 3.0},
              {"id": "d", "cluster": 1, "score": 0.0, "raw_score": 4.0},
              {"id": "x", "cluster": 1, "score": None}]  # unscored: left out
    p = subset_preferences(pool, ["c", "d"], scores)
    assert p["mean_response_chars_selected"] == 75.0
    assert p["mean_response_chars_pool"] == 47.5
    assert p["markdown_share_selected"] == 0.5 and p["markdown_share_pool"] == 0.5
    assert p["score_length_spearman"] == 1.0
    assert p["score_length_spearman_within_cluster"] == 1.0  # cluster 1 has one member: left out
    assert p["scored_records"] == 4


def test_subset_preferences_without_scores():
    p = subset_preferences({"a": "short", "b": "# a heading\n" + "t" * 40}, ["b"])
    assert p["markdown_share_selected"] == 1.0 and p["markdown_share_pool"] == 0.5
    assert p["score_length_spearman"] is None and p["scored_records"] == 0
