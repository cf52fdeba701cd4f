"""The gate: rules per suite with a bar (chance or a baseline of the same measurement), measurements matched by the
judge's key AND the suite file's content, a local measurement overriding a committed one, observed position checks,
and the verdict computed when a run ends (never frozen in a stage's output)."""
from __future__ import annotations

import json

import pytest

from tacos.judges.gate import GateConfig, Rule, judge_key, measurement, record, record_verdict, verdict
from tacos.records import file_sha256


@pytest.fixture
def suites(tmp_path):
    d = tmp_path / "suites"
    d.mkdir()
    for name in ("sanity", "balanced"):
        (d / f"{name}.jsonl").write_text(json.dumps({"name": name}) + "\n")
    return d


def _gate(tmp_path, suites, **kw) -> GateConfig:
    return GateConfig(pair_rules=[Rule("sanity", 0.5), Rule("balanced", "baseline_longer")],
                      rating_rules=[{"suite": "sanity", "bar": "baseline_length_spearman"}], suites_dir=str(suites),
                      measurements=[str(tmp_path / "committed.jsonl"), str(tmp_path / "local.jsonl")], **kw)


def _measure(path, key, suites, suite, **metrics):
    record(path, measurement(key, {"judge": "x"}, None, suite, file_sha256(suites / f"{suite}.jsonl"), "pairs",
                             {"overall": metrics}))


def test_a_pair_judge_must_clear_every_rule(tmp_path, suites):
    gate = _gate(tmp_path, suites)
    key = judge_key({"judge": "x"}, None)
    never = verdict(key, True, {}, gate)
    assert not never["judge_informative"] and all("never measured" in r for r in never["judge_gate_reasons"])
    _measure(gate.measurements[0], key, suites, "sanity", agreement_all=0.97, agreement_all_ci=[0.93, 1.0], n=50)
    # always-longer is the bar on the balanced suite: 0.58 [0.52, 0.65] is above chance but not above 0.55
    _measure(gate.measurements[0], key, suites, "balanced", agreement_all=0.58, agreement_all_ci=[0.52, 0.65], n=120,
             baseline_longer=0.55)
    v = verdict(key, True, {}, gate)
    assert not v["judge_informative"] and len(v["judge_gate_reasons"]) == 1
    assert "not above baseline_longer (0.55)" in v["judge_gate_reasons"][0]
    _measure(gate.measurements[0], key, suites, "balanced", agreement_all=0.63, agreement_all_ci=[0.56, 0.7], n=120,
             baseline_longer=0.5)
    ok = verdict(key, True, {}, gate)
    assert ok["judge_informative"] and ok["judge_measured"]["balanced"]["bar"] == 0.5


def test_a_local_measurement_overrides_a_committed_one(tmp_path, suites):
    gate = _gate(tmp_path, suites)
    key = judge_key({"judge": "x"}, "llm:a")
    for suite in ("sanity", "balanced"):
        _measure(gate.measurements[1], key, suites, suite, agreement_all=0.5, agreement_all_ci=[0.4, 0.6], n=50,
                 baseline_longer=0.5)
        _measure(gate.measurements[0], key, suites, suite, agreement_all=0.9, agreement_all_ci=[0.8, 1.0], n=50,
                 baseline_longer=0.5)
    assert not verdict(key, True, {}, gate)["judge_informative"]  # the local (worse) one counts


def test_a_measurement_of_another_suite_version_or_judge_does_not_count(tmp_path, suites):
    gate = _gate(tmp_path, suites)
    key = judge_key({"judge": "x"}, None)
    for suite in ("sanity", "balanced"):
        _measure(gate.measurements[0], key, suites, suite, agreement_all=0.9, agreement_all_ci=[0.8, 1.0], n=50,
                 baseline_longer=0.5)
    assert verdict(key, True, {}, gate)["judge_informative"]
    assert not verdict(judge_key({"judge": "y"}, None), True, {}, gate)["judge_informative"]
    (suites / "balanced.jsonl").write_text('{"name": "balanced, relabelled"}\n')
    stale = verdict(key, True, {}, gate)
    assert not stale["judge_informative"] and "earlier version" in stale["judge_gate_reasons"][0]


def test_a_rating_judge_must_beat_length(tmp_path, suites):
    gate = _gate(tmp_path, suites)
    key = judge_key({"judge": "r"}, None)
    record(gate.measurements[0], measurement(key, {}, None, "sanity", file_sha256(suites / "sanity.jsonl"), "ratings",
                                             {"overall": {"spearman": 0.4, "spearman_ci": [0.2, 0.6], "n": 79,
                                                          "baseline_length_spearman": 0.38}}))
    v = verdict(key, False, {}, gate)
    assert not v["judge_informative"] and "baseline_length_spearman (0.38)" in v["judge_gate_reasons"][0]


def test_observed_position_checks(tmp_path, suites):
    gate = _gate(tmp_path, suites, min_consistency=0.6, max_first_position_rate=0.8)
    v = verdict("k", True, {"consistency": 0.03, "first_position_win_rate": 0.98}, gate)
    assert "3%" in v["judge_gate_reasons"][0] and "98%" in v["judge_gate_reasons"][1]
    with pytest.raises(ValueError, match="bar"):
        GateConfig(pair_rules=[{"suite": "s", "bar": "always"}]).validate()


def test_the_verdict_is_recomputed_from_the_measurements_as_they_are(tmp_path, suites):
    gate = _gate(tmp_path, suites)
    key = judge_key({"judge": "x"}, None)
    manifest = {"stats": {"judge_key": key, "judge_pairwise": True}}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert record_verdict(run_dir, "score", manifest, gate)["judge_informative"] is False
    for suite in ("sanity", "balanced"):
        _measure(gate.measurements[1], key, suites, suite, agreement_all=0.9, agreement_all_ci=[0.8, 1.0], n=50,
                 baseline_longer=0.5)
    assert record_verdict(run_dir, "score", manifest, gate)["judge_informative"] is True
    assert json.loads((run_dir / "gate.json").read_text())["score"]["judge_informative"] is True
    assert record_verdict(run_dir, "tag", {"stats": {}}, gate) is None


def test_an_old_measurement_or_many_invalid_verdicts_fail(tmp_path, suites):
    gate = _gate(tmp_path, suites, max_invalid_rate=0.1)
    key = judge_key({"judge": "x"}, None)
    # measured before agreement over all items existed: valid-only agreement does not count any more
    _measure(gate.measurements[0], key, suites, "sanity", agreement=0.97, agreement_ci=[0.93, 1.0], n=50)
    _measure(gate.measurements[0], key, suites, "balanced", agreement_all=0.9, agreement_all_ci=[0.8, 1.0], n=50,
             baseline_longer=0.5, invalid_rate=0.3)
    reasons = verdict(key, True, {}, gate)["judge_gate_reasons"]
    assert "has no agreement_all_ci (measured before the ladder" in reasons[0]
    assert reasons[1] == "balanced: 30% of the items got no verdict (> 10%)" and len(reasons) == 2


def test_a_judge_no_rule_is_written_for_never_passes_silently(tmp_path, suites):
    """MT-Bench suites are report-only: with no rating rule, a rating judge's verdict says so instead of passing."""
    gate = GateConfig(pair_rules=[Rule("sanity", 0.5)], suites_dir=str(suites))
    v = verdict(judge_key({"judge": "r"}, None), False, {}, gate)
    assert not v["judge_informative"]
    assert v["judge_gate_reasons"] == ["no labelled rating suite measured for this judge: the gate has no rule for "
                                       "rating judges (gate.rating_rules)"]


def test_a_stage_with_two_judges_is_informative_only_when_both_are(tmp_path, suites):
    gate = _gate(tmp_path, suites)
    pair, rater = judge_key({"judge": "x"}, None), judge_key({"judge": "r"}, None)
    for suite in ("sanity", "balanced"):
        _measure(gate.measurements[0], pair, suites, suite, agreement_all=0.9, agreement_all_ci=[0.8, 1.0], n=50,
                 baseline_longer=0.5)
    stats = {"gate_judges": {
        "judge.pair_judge": {"judge_key": pair, "judge_pairwise": True, "judge_name": "p",
                             "judge_path": "judge.pair_judge"},
        "judge.benchmarks.mt_bench.judge": {"judge_key": rater, "judge_pairwise": False, "judge_name": "g",
                                            "judge_path": "judge.benchmarks.mt_bench.judge"}}}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = record_verdict(run_dir, "judge", {"stats": stats}, gate)
    assert result["judges"]["judge.pair_judge"]["judge_informative"] is True
    assert result["judges"]["judge.benchmarks.mt_bench.judge"]["judge_informative"] is False
    assert result["judge_informative"] is False
    assert result["judge_gate_reasons"][0].startswith("g (judge.benchmarks.mt_bench.judge): never measured")
    assert "--judge judge.benchmarks.mt_bench.judge" in result["judge_gate_reasons"][0]
    rated = {"spearman": 0.6, "spearman_ci": [0.5, 0.7], "n": 80, "baseline_length_spearman": 0.3}
    record(gate.measurements[1], measurement(rater, {}, None, "sanity", file_sha256(suites / "sanity.jsonl"),
                                             "ratings", {"overall": rated}))
    assert record_verdict(run_dir, "judge", {"stats": stats}, gate)["judge_informative"] is True
    assert json.loads((run_dir / "gate.json").read_text())["judge"]["judge_informative"] is True
