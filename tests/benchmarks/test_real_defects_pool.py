"""The real-defects pools and the bound on the real-model CI test: a selector with no signal must fail it with
probability >= 95 % (issue 20). Fast: reads the committed pools, no model."""
from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("bench_real_defects", REPO / "benchmarks" / "bench_real_defects.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_a_no_signal_selector_fails_the_ci_check_with_probability_at_least_95_percent():
    ci = bench.CI_CHECK
    pool = ci["good"] + ci["defects"]
    for selected in range(ci["min_selected"], ci["budget"] + 1):  # every selection size the test accepts
        assert bench.no_signal_pass_rate(pool, ci["defects"], selected, ci["pass_bar"]) <= 0.05
    assert round(bench.no_signal_pass_rate(pool, ci["defects"], ci["budget"], ci["pass_bar"]), 4) == 0.0136
    # the old 12-row planted check (5 bad, budget 4, <= 1 bad) passed a no-signal selector 42 % of the time
    assert round(bench.no_signal_pass_rate(12, 5, 4, 1), 2) == 0.42


def test_the_pools_hold_40_rows_with_12_real_defects_of_every_kind():
    for half in ("dev", "test"):
        rows = [json.loads(line) for line in (bench.POOLS / f"real_defects_pool_{half}.jsonl").read_text().splitlines()]
        kinds = Counter(r["defect"] for r in rows if r["defect"])
        assert len(rows) == 40 and sum(kinds.values()) == 12
        assert set(kinds) == {"link_input", "attachment", "merged_tasks", "placeholder_output", "wrong_answer",
                              "action_claim", "cut_512"}
    dev = bench.defects_of(bench.POOLS / "real_defects_pool_dev.jsonl")
    test = bench.defects_of(bench.POOLS / "real_defects_pool_test.jsonl")
    assert len(dev) == len(test) == 12 and not set(dev) & set(test)
    # the target a selection must meet on such a pool (budget 15, <= 1 defect) passes a no-signal selector rarely
    assert round(bench.no_signal_pass_rate(40, 12, 15, 1), 3) == 0.013


def test_cut_rows_do_not_all_end_the_same_way():
    """Real truncation falls anywhere: a rule keyed on 'no final punctuation' must not catch every cut row."""
    pairs = [json.loads(line) for half in ("dev", "test")
             for line in (bench.POOLS / f"real_defects_{half}.jsonl").read_text().splitlines()]
    cut = [p["output_1"] if p["preference"] == 2 else p["output_2"] for p in pairs if p["subset"] == "cut_512"]
    assert len(cut) >= 20 and len({c.rstrip()[-1] for c in cut}) >= 4
