import numpy as np
import pytest

from tacos.method.tag_normalization import (TagMapEntry, display_names, effective_alpha, normalize_tags,
                                            rule_normalize, surface_forms)


@pytest.mark.parametrize("tag, expected", [
    ("Creative Writing", "creativ write"),  # the reference gave "creative writ" (last word only)
    ("Q&A", "q a"),
    ("Spelling and Grammar Check", "spell and grammar check"),  # the reference left it unchanged
    ("  C++ Programming!! ", "c program"),  # no leading/trailing space survives
    ("Role-play", "role play"),
    ("Mathematics", "mathemat"),
    ("!!!", ""),
])
def test_rule_normalize_stems_every_word(tag, expected):
    assert rule_normalize(tag) == expected


def test_rule_normalize_without_stemming_and_unknown_stemmer():
    assert rule_normalize("Creative  Writing", stemmer="none") == "creative writing"
    with pytest.raises(ValueError, match="stemmer"):
        rule_normalize("x", stemmer="lancaster")


@pytest.mark.parametrize("n, expected", [(52_000, 20), (1_000_000, 20), (5_000, 2), (40, 1), (0, 1), (26_000, 10)])
def test_effective_alpha_scales_linearly_within_bounds(n, expected):
    assert effective_alpha(20, n) == expected


def test_effective_alpha_bounds_and_validation():
    assert effective_alpha(20, 100, min_alpha=5) == 5
    assert effective_alpha(3, 10, reference_pool=10) == 3
    with pytest.raises(ValueError):
        effective_alpha(20, -1)


def _by_raw(tag_map):
    return {e.raw: e for e in tag_map}


def test_frequency_filter_then_rules_drops_rare_tags_and_empty_records():
    records = {
        "r1": ["Writing", "Creative Writing", "Writing"],
        "r2": ["Creative Writing", "Poetry"],
        "r3": ["Rare"],
        "r4": [],
        "r5": ["writing", "Poetry"],
    }
    out, tag_map, stats = normalize_tags(records, alpha=2, association=False)
    # "Writing" (2x, both in r1) survives; "writing" (1x) is dropped before the rules could merge it
    assert out == {"r1": ["write", "creativ write"], "r2": ["creativ write", "poetri"], "r5": ["poetri"]}
    m = _by_raw(tag_map)
    assert m["writing"] == TagMapEntry("writing", None, "frequency<alpha", 1)
    assert m["Rare"].canonical is None
    assert m["Writing"] == TagMapEntry("Writing", "write", "rule", 2)
    assert [e.raw for e in tag_map][:3] == ["Creative Writing", "Poetry", "Writing"]  # most frequent first
    assert stats == {"order": "reference", "alpha_used": 2, "n_raw_tags": 5, "n_after_frequency": 3,
                     "n_after_rules": 3, "n_after_association": 3, "n_association_merges": 0,
                     "n_records_in": 5, "n_records_dropped": 2, "n_records_out": 3}


def test_rules_first_counts_canonical_tags():
    records = {"r1": ["Writing"], "r2": ["writing"], "r3": ["Poetry"]}
    out, tag_map, stats = normalize_tags(records, alpha=2, order="rules_first", association=False)
    assert out == {"r1": ["write"], "r2": ["write"]}
    assert _by_raw(tag_map)["writing"].reason == "rule"
    assert _by_raw(tag_map)["Poetry"].reason == "frequency<alpha"
    assert (stats["n_after_rules"], stats["n_after_frequency"], stats["n_records_dropped"]) == (2, 1, 1)


def test_kept_reason_when_rules_change_nothing():
    out, tag_map, _ = normalize_tags({"r1": ["code"], "r2": ["code"]}, alpha=1, association=False)
    assert tag_map == [TagMapEntry("code", "code", "kept", 2)]
    assert out == {"r1": ["code"], "r2": ["code"]}


def test_tag_that_always_cooccurs_is_merged_and_recorded():
    # "b" occurs only with "a" (3 of a's 5 records); "a" is not always with "b": only b -> a qualifies
    records = {f"r{i}": ["b", "a"] for i in range(3)} | {"r3": ["a"], "r4": ["a", "c"], "r5": ["c"]}
    out, tag_map, stats = normalize_tags(records, alpha=1)
    assert out["r0"] == ["a"] and out["r4"] == ["a", "c"]
    assert _by_raw(tag_map)["b"] == TagMapEntry("b", "a", "association:a conf=1.0000 support=3", 3)
    assert stats["n_after_association"] == 2 and stats["n_association_merges"] == 1


def test_symmetric_association_merges_less_frequent_then_lexicographic():
    # x and y always together (both directions qualify, equal counts): the tie goes to the smaller string "x"
    records = {f"r{i}": ["y", "x"] for i in range(4)}
    out, tag_map, _ = normalize_tags(records, alpha=1)
    assert set(map(tuple, out.values())) == {("x",)}
    assert _by_raw(tag_map)["y"].reason.startswith("association:x conf=1.0000 support=4")
    # with min_confidence 0.75, "a" (4 records, 3 with "b") and "b" (3 records) both qualify: b is less frequent
    records = {"r0": ["a", "b"], "r1": ["a", "b"], "r2": ["a", "b"], "r3": ["a"]}
    out, tag_map, _ = normalize_tags(records, alpha=1, min_confidence=0.75)
    assert _by_raw(tag_map)["b"].canonical == "a" and _by_raw(tag_map)["a"].reason == "kept"


def test_tag_goes_to_its_strongest_qualifying_target():
    # c is always with b and with a; a is more frequent than b: c -> a directly
    records = {"r0": ["a", "b", "c"], "r1": ["a", "b", "c"], "r2": ["a", "b"], "r3": ["a", "b"], "r4": ["a"],
               "r5": ["a"]}
    out, tag_map, stats = normalize_tags(records, alpha=1)
    assert set(map(tuple, out.values())) == {("a",)}
    m = _by_raw(tag_map)
    assert m["b"].reason == "association:a conf=1.0000 support=4"
    assert m["c"].reason == "association:a conf=1.0000 support=2"
    assert stats["n_after_association"] == 1


def test_association_chain_is_resolved_to_its_end():
    # c -> b qualifies (c never without b) but c -> a does not (3/4); b -> a does (6/7): so c -> b -> a
    records = {f"abc{i}": ["a", "b", "c"] for i in range(3)} | {"bc": ["b", "c"]} \
        | {f"ab{i}": ["a", "b"] for i in range(3)} | {f"a{i}": ["a"] for i in range(2)}
    out, tag_map, _ = normalize_tags(records, alpha=1, min_confidence=0.85)
    assert set(map(tuple, out.values())) == {("a",)}
    m = _by_raw(tag_map)
    assert m["b"].reason == "association:a conf=0.8571 support=6"
    assert m["c"].reason == "association:a conf=0.7500 support=3 via=b"


def test_no_merge_below_confidence_or_support():
    records = {"r0": ["a", "b"], "r1": ["a", "b"], "r2": ["b"], "r3": ["a"]}  # 2/3 each way
    out, _, stats = normalize_tags(records, alpha=1)
    assert stats["n_association_merges"] == 0 and out["r0"] == ["a", "b"]
    out, _, stats = normalize_tags({"r0": ["a", "b"], "r1": ["a"]}, alpha=1)  # b -> a: support 1 < 2
    assert stats["n_association_merges"] == 0
    _, _, stats = normalize_tags({"r0": ["a", "b"], "r1": ["a"]}, alpha=1, min_support=1)
    assert stats["n_association_merges"] == 1


def test_normalize_is_deterministic_and_order_of_first_appearance():
    rng = np.random.default_rng(0)
    vocab = [f"Tag {i}" for i in range(30)] + [f"tag {i}s" for i in range(30)]
    records = {f"r{i}": [vocab[j] for j in rng.integers(0, len(vocab), 4)] for i in range(300)}
    first = normalize_tags(records, alpha=3)
    assert normalize_tags(dict(records), alpha=3) == first
    out = first[0]
    for rid, tags in out.items():
        assert len(tags) == len(set(tags))


def test_rejects_a_string_instead_of_a_tag_list():
    with pytest.raises(TypeError, match="r1"):
        normalize_tags({"r1": "Writing"}, alpha=1)


def test_empty_input():
    out, tag_map, stats = normalize_tags({}, alpha=20)
    assert out == {} and tag_map == [] and stats["n_records_in"] == 0


def test_surface_forms_pick_the_most_frequent_unmerged_raw_form():
    records = {"r0": ["Creative Writing", "Poetry"], "r1": ["creative writing!", "Poetry"],
               "r2": ["creative writing!", "Poetry"], "r3": ["Creative-Writing", "Geometry"],
               "r4": ["Geometry", "Creative Writing"], "r5": ["Geometry"]}
    out, tag_map, _ = normalize_tags(records, alpha=1)
    # "poetri" (3 records, always with creative writing) is merged; its raw form "Poetry" (count 3) is more
    # frequent than any single raw form of "creativ write" but must not name it
    assert _by_raw(tag_map)["Poetry"].canonical == "creativ write"
    assert surface_forms(tag_map) == {"creativ write": "creative writing", "geometri": "geometry"}
    # The plots show the tag as written most often (not the stem, not lowercased): "Creative Writing" twice vs
    # "creative writing!" twice -> the tie goes to the alphabetically first raw string
    assert display_names(tag_map) == {"creativ write": "Creative Writing", "geometri": "Geometry"}


def test_normalize_spec_thresholds_and_clear_errors():
    """The `normalize` section as NormalizeSpec: thresholds scaled as the stage uses them; a bad value names its key."""
    from tacos.method.tag_normalization import NormalizeSpec

    spec = NormalizeSpec(alpha=20, association={"enabled": True, "min_support": 40, "min_confidence": 0.99})
    spec.validate()
    assert spec.thresholds(5_000) == (effective_alpha(20, 5_000), effective_alpha(40, 5_000, min_alpha=3)) == (2, 4)
    assert NormalizeSpec(scale_alpha=False).thresholds(5_000) == (20, 40)
    bad = [({"alpha": -1}, "normalize.alpha"), ({"alpha": "20"}, "normalize.alpha"),
           ({"order": "random"}, "normalize.order"), ({"scale_alpha": "yes"}, "normalize.scale_alpha"),
           ({"association": {"min_support": 0}}, "normalize.association.min_support"),
           ({"association": {"min_confidence": 1.5}}, "normalize.association.min_confidence"),
           ({"association": {"enabled": 1}}, "normalize.association.enabled")]
    for kwargs, key in bad:
        with pytest.raises(ValueError, match=rf"^{key} must"):
            NormalizeSpec(**kwargs).validate()
