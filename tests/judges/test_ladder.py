"""The ladder of trivial rungs and the gate on it (issue 20): a judge built from the length-ratio rule fails, a judge
that abstains on hard pairs fails, a judge that knows more than length passes; each rung; Wilson intervals, AUC and
the paired tests; a judge that claims no quality ranking is held to the screening rules only."""
from __future__ import annotations

import json

import pytest
from fake_judges import write_suite

from tacos.data.preference_pairs import PreferencePair, SingleRating
from tacos.judges.gate import GateConfig, Rule, record_verdict, verdict
from tacos.judges.ladder import (AlwaysLonger, AlwaysShorter, LengthRatio, MarkdownThenRatio, MoreMarkdown, Relevance,
                                 dev_half, markdown_count, rating_rungs)
from tacos.judges.measure import rating_metrics_by_subset
from tacos.judges.statistics import auc, auc_ci, delong_paired_p, sign_flip_p, wilson


def _pair(o1: str, o2: str, pref: float = 1.0, **kw) -> PreferencePair:
    return PreferencePair(kw.pop("id", o1[:8] + o2[:8]), "Do it.", "", o1, o2, pref, **kw)


# -- rungs -------------------------------------------------------------------------------------------------------
def test_length_rungs():
    pairs = [_pair("a" * 10, "b" * 30), _pair("a" * 30, "b" * 20), _pair("same", "SAME")]
    assert AlwaysLonger().predict(pairs) == [2.0, 1.0, 1.5]
    assert AlwaysShorter().predict(pairs) == [1.0, 2.0, 1.5]
    # t = 2: 30 vs 10 is 3x (the longer), 30 vs 20 is 1.5x (the shorter)
    assert LengthRatio(2.0).predict(pairs) == [2.0, 2.0, 1.5]


def test_the_length_ratio_threshold_is_fitted_on_the_dev_pairs():
    # labels: the longer when it is >= 2x longer, else the shorter
    dev = [_pair("a" * 10, "b" * 25, 2.0), _pair("a" * 10, "b" * 40, 2.0), _pair("a" * 10, "b" * 12, 1.0),
           _pair("a" * 18, "b" * 10, 2.0), _pair("a" * 30, "b" * 10, 1.0)]
    rung = LengthRatio().fit(dev)
    assert 1.8 < rung.threshold <= 2.5 and rung.params() == {"threshold": round(rung.threshold, 4)}
    assert rung.predict(dev) == [p.preference for p in dev]
    # all-shorter labels: a threshold above every ratio (always the shorter)
    assert LengthRatio().fit([_pair("a" * 10, "b" * 50, 1.0)]).threshold > 5


def test_markdown_rungs():
    md = "# Title\n\n- one\n- two\n1. first\n2) second\n**bold** and __bold__\n```py\nx = 1\n```"
    assert markdown_count(md) == 1 + 2 + 2 + 2 + 2 and markdown_count("Plain text - not a list. 3.5 apples.") == 0
    pairs = [_pair("plain", md), _pair("- a\n- b", "plain words"), _pair("a" * 10, "b" * 40)]
    assert MoreMarkdown().predict(pairs) == [2.0, 1.0, 1.5]
    # no markdown difference: the ratio rule decides (fitted on the dev pairs without one: the shorter wins there)
    rung = MarkdownThenRatio().fit([_pair("a" * 10, "b" * 40, 1.0), _pair("- x\n- y", "z", 2.0)])
    assert rung.predict(pairs) == [2.0, 1.0, 1.0]


def test_relevance_rung_uses_each_side_under_its_own_instruction():
    seen = []

    def scorer(records):
        seen.extend(r.instruction for r in records)
        return [float(len(r.instruction)) if r.output else None for r in records]

    pairs = [PreferencePair("x", "Short.", "", "a", "b", 1.0, instruction_2="A longer instruction.", input_2=""),
             _pair("a", "")]
    assert Relevance(scorer).predict(pairs) == [2.0, 1.5]  # a missing score is a tie
    assert seen[:2] == ["Short.", "A longer instruction."]


def test_rating_rungs_fit_their_direction_on_dev():
    dev = [SingleRating(f"d{k}", "Q", "", "x" * (10 * k), float(10 - k)) for k in range(1, 6)]  # shorter = better
    length, markdown = (r.fit(dev) for r in rating_rungs())
    assert length.direction == -1.0 and markdown.direction == 1.0  # markdown is constant: the default direction
    assert length.predict(dev[:2]) == [-10.0, -20.0]


def test_dev_half_is_the_sibling_file(tmp_path):
    test, dev = tmp_path / "suite_test.jsonl", tmp_path / "suite_dev.jsonl"
    test.write_text("")
    assert dev_half(test)[0] == test and "no suite_dev.jsonl" in dev_half(test)[1]
    dev.write_text("")
    assert dev_half(test) == (dev, "dev half suite_dev.jsonl")
    assert dev_half(dev)[0] == dev and "itself" in dev_half(dev)[1]


# -- statistics --------------------------------------------------------------------------------------------------
def test_wilson_intervals():
    assert wilson(55, 55) == [0.9347, 1.0]  # a percentile bootstrap says [1.00, 1.00]
    assert wilson(5, 10) == [0.2366, 0.7634] and wilson(0, 10) == [0.0, 0.2775] and wilson(0, 0) is None


def test_auc_on_a_toy_example():
    scores, labels = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    assert auc(scores, labels) == 0.75
    lo, hi = auc_ci(scores, labels)
    assert lo < 0.75 < hi == 1.0
    assert auc([0.1, None, 0.35, 0.8], labels) == 0.75  # a missing score ties: (1 + 0.5 + 1 + 0.5) / 4
    assert auc([1, 2, 3, 4], [1, 1, 10, 10]) == 1.0  # any two label values: the higher is positive
    perfect, noise = list(range(20)), [7, 15, 2, 11, 19, 0, 13, 5, 17, 9, 4, 18, 1, 12, 8, 16, 3, 14, 6, 10]
    halves = [0] * 10 + [1] * 10
    assert auc(perfect, halves) == 1.0 and auc(noise, halves) == 0.47
    assert delong_paired_p(perfect, noise, halves) < 0.001 and delong_paired_p(noise, perfect, halves) > 0.999


def test_sign_flip_test_is_mcnemar_with_half_points():
    assert sign_flip_p([1, 1, 1, 1, 1, 0, 0]) == pytest.approx(1 / 32)  # 5 discordant pairs, all for the judge
    assert sign_flip_p([1, -1]) == pytest.approx(0.75) and sign_flip_p([0, 0]) == 1.0
    assert sign_flip_p([0.5]) == pytest.approx(0.5) and sign_flip_p([1, 0.5, -0.5]) == pytest.approx(0.375)


def test_binary_ratings_get_auc_and_the_ladder():
    # the judge's score knows the label; length runs the other way on dev and test
    items = [SingleRating(f"r{k}", "Q", "", "x" * (100 - 10 * k), 1.0 if k % 2 else 10.0) for k in range(8)]
    scores = [it.rating + 0.1 * k for k, it in enumerate(items)]
    rungs = {r.name: r.fit(items).predict(items) for r in rating_rungs()}
    m = rating_metrics_by_subset(items, scores, n_boot=50, seed=0, rungs=rungs)["overall"]
    assert m["auc"] == 1.0 and m["auc_ci"][1] == 1.0 and m["ladder_metric"] == "auc"
    assert set(m["ladder"]) == {"length", "markdown"} and m["ladder"]["markdown"]["auc"] == 0.5
    assert m["best_rung"] in m["ladder"] and m["p_vs_best_rung"] is not None


# -- the gate on the ladder (judge-eval end to end, then the verdict) --------------------------------------------
@pytest.fixture
def toy(tmp_path):
    d = tmp_path / "suites"
    d.mkdir()
    write_suite(d / "toy_dev.jsonl", 200, seed=1, noise=0.3)
    write_suite(d / "toy_test.jsonl", 200, seed=2, noise=0.3)
    return d


def _judge_eval(tmp_path, toy, mode: str, claims_quality: bool = True) -> dict:
    from tacos.evaluate_judge import evaluate_judge

    overrides = [f"paths.output_dir={tmp_path / 'o'}", f"paths.cache_dir={tmp_path / 'cache'}", "logger=none",
                 "gate.relevance_rung=false", "+fake._target_=fake_judges.LabelJudge", f"+fake.mode={mode}",
                 f"+fake.suite={toy / 'toy_test.jsonl'}", f"+fake.dev={toy / 'toy_dev.jsonl'}",
                 f"+fake.claims_quality={str(claims_quality).lower()}"]
    return evaluate_judge(overrides, pairs=str(toy / "toy_test.jsonl"), judge_path="fake", out=str(tmp_path / mode))


def _gate(tmp_path, toy, claim: str = "quality") -> GateConfig:
    return GateConfig(pair_rules=[Rule("toy_test", "best_rung", claim)], suites_dir=str(toy),
                      measurements=[str(tmp_path / "o" / "judge_eval" / "measurements.jsonl")])


def test_a_judge_built_from_the_ratio_rule_fails_the_gate(tmp_path, toy):
    result = _judge_eval(tmp_path, toy, "ratio")
    m = result["metrics"]["overall"]
    assert result["ladder"]["fitted_on"] == "dev half toy_dev.jsonl"
    assert set(m["ladder"]) == {"always_longer", "always_shorter", "length_ratio", "more_markdown",
                                "markdown_then_ratio"}
    assert m["best_rung"] in ("length_ratio", "markdown_then_ratio") and m["agreement_all"] == m["best_rung_value"]
    assert m["agreement_all_ci"][0] > 0.5  # above chance: the old gate's bar (CI low above 0.5) passed it
    v = verdict(result["judge_key"], True, {}, _gate(tmp_path, toy))
    assert not v["judge_informative"] and "not shown above the best trivial rung" in v["judge_gate_reasons"][0]
    assert v["judge_measured"]["toy_test"]["p_vs_best_rung"] == 1.0


def test_a_judge_that_abstains_on_hard_pairs_fails_the_gate(tmp_path, toy):
    result = _judge_eval(tmp_path, toy, "abstain")
    m = result["metrics"]["overall"]
    assert m["agreement"] == 1.0 and m["agreement_all"] < 0.9 and m["invalid_rate"] > 0.1  # perfect where it answers
    v = verdict(result["judge_key"], True, {}, _gate(tmp_path, toy))
    assert not v["judge_informative"] and any("got no verdict" in r for r in v["judge_gate_reasons"])


def test_a_judge_that_knows_more_than_length_passes(tmp_path, toy, capsys):
    from tacos.evaluate_judge import format_table

    result = _judge_eval(tmp_path, toy, "oracle")
    m = result["metrics"]["overall"]
    assert m["agreement_all"] == 0.9 and m["p_vs_best_rung"] < 0.05
    v = verdict(result["judge_key"], True, {}, _gate(tmp_path, toy))
    assert v["judge_informative"], v["judge_gate_reasons"]
    table = format_table(result)
    assert "always_shorter" in table and "length_ratio" in table and "(p " in table
    rows = json.loads((tmp_path / "oracle" / "judgments.json").read_text())
    assert set(rows[0]["rungs"]) == set(m["ladder"])


def test_a_judge_that_claims_no_quality_ranking_meets_only_screening_rules(tmp_path, toy):
    result = _judge_eval(tmp_path, toy, "ratio", claims_quality=False)
    assert result["claims_quality"] is False
    gate = _gate(tmp_path, toy)
    gate.pair_rules = [Rule("toy_test", 0.5, "screening"), Rule("toy_test", "best_rung", "quality")]
    v = verdict(result["judge_key"], True, {}, gate, claims_quality=False)
    assert v["judge_informative"] and v["claim_note"] == "no quality ranking claimed"
    assert not verdict(result["judge_key"], True, {}, gate)["judge_informative"]  # claimed: the quality rule counts
    manifest = {"stats": {"judge_key": result["judge_key"], "judge_pairwise": True, "judge_claims_quality": False}}
    (tmp_path / "run").mkdir()
    assert record_verdict(tmp_path / "run", "score", manifest, gate)["claim_note"] == "no quality ranking claimed"
    gate.pair_rules = [Rule("toy_test", "best_rung", "quality")]
    only_quality = verdict(result["judge_key"], True, {}, gate, claims_quality=False)
    assert not only_quality["judge_informative"] and "no gate rule applies" in only_quality["judge_gate_reasons"][0]


def test_gate_config_checks_claims_and_bars():
    with pytest.raises(ValueError, match="claim"):
        GateConfig(pair_rules=[{"suite": "s", "bar": 0.5, "claim": "vibes"}]).validate()
    with pytest.raises(ValueError, match="bar"):
        GateConfig(pair_rules=[{"suite": "s", "bar": "best"}]).validate()
    GateConfig(pair_rules=[{"suite": "s", "bar": "best_rung", "claim": "quality"}]).validate()


@pytest.mark.parametrize("mode", ["length", "oracle"])
def test_the_rating_gate_reads_auc_against_the_best_rung(tmp_path, mode):
    from fake_judges import write_ratings

    from tacos.evaluate_judge import evaluate_judge

    d = tmp_path / "suites"
    d.mkdir()
    write_ratings(d / "rated_dev.jsonl", 150, seed=1)
    test = write_ratings(d / "rated_test.jsonl", 150, seed=2)
    result = evaluate_judge([f"paths.output_dir={tmp_path / 'o'}", "logger=none", "gate.relevance_rung=false",
                             "+fake._target_=fake_judges.LabelRater", f"+fake.mode={mode}", f"+fake.suite={test}"],
                            ratings=str(test), judge_path="fake", out=str(tmp_path / "je"), n_boot=50)
    m = result["metrics"]["overall"]
    assert m["ladder_metric"] == "auc" and set(m["ladder"]) == {"length", "markdown"} and m["best_rung"] == "length"
    assert 0.55 < m["best_rung_value"] < 0.85 and m["auc_ci"][0] < m["auc"] < m["auc_ci"][1]
    gate = GateConfig(rating_rules=[Rule("rated_test", "best_rung", "quality", metric="auc")], suites_dir=str(d),
                      measurements=[str(tmp_path / "o" / "judge_eval" / "measurements.jsonl")])
    v = verdict(result["judge_key"], False, {}, gate)
    # a rater that is length itself is not above the length rung; one that knows the labels is
    assert v["judge_informative"] is (mode == "oracle"), v["judge_gate_reasons"]
