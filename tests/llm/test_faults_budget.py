"""Project issue 12, item 6: the budget is per run dir, not per process.

A re-run, a requeued job or a resumed run in the same run dir starts from what earlier processes spent there
(`<run_dir>/llm_spend.json`), so `budget.max_usd` caps their total; a sweep prints what its jobs spent.
"""
from __future__ import annotations

import json
import multiprocessing

import pytest
from stub_server import StubServer
from tacos_responder import tacos_responder

from _faults_common import error_lines, llm_overrides, manifests, sample_rows, write_pool
from conftest import run_cli
from tacos.hydra_callbacks import spend_line
from tacos.llm.calling.ledger import SPEND_FILE, BudgetExceeded, CostLedger, read_spend

# Input tokens only, so the ledger's estimate of a call (prompt chars / 4) is close to what the stub bills.
PRICED = ["llm.price_in_per_mtok=1000", "llm.price_out_per_mtok=0"]


# ---- the ledger ------------------------------------------------------------------------------------------------

def test_spend_file_carries_over_to_the_next_process(tmp_path):
    spend = tmp_path / SPEND_FILE
    first = CostLedger(max_usd=1.0, spend_file=spend)
    for _ in range(2):
        first.reserve(0.3)
        first.settle(0.3, 0.3)
    assert read_spend(spend) == {"spent_usd": pytest.approx(0.6), "calls": 2}

    second = CostLedger(max_usd=1.0, spend_file=spend)  # a re-run in the same run dir
    assert second.spent_usd == pytest.approx(0.6) and second.process_spent_usd == 0.0
    with pytest.raises(BudgetExceeded, match=r"earlier runs in this run dir"):
        second.reserve(0.5)
    second.reserve(0.3)
    second.settle(0.3, 0.25)
    assert read_spend(spend)["spent_usd"] == pytest.approx(0.85)
    assert second.summary()["remaining_usd"] == pytest.approx(0.15)


def test_a_ledger_sees_what_a_concurrent_writer_spent(tmp_path):
    spend = tmp_path / SPEND_FILE
    a, b = CostLedger(max_usd=1.0, spend_file=spend), CostLedger(max_usd=1.0, spend_file=spend)
    a.reserve(0.5)
    a.settle(0.5, 0.5)
    b.reserve(0.1)
    b.settle(0.1, 0.1)
    assert b.spent_usd == pytest.approx(0.6) and read_spend(spend)["spent_usd"] == pytest.approx(0.6)
    with pytest.raises(BudgetExceeded):
        b.reserve(0.5)


def _spend_many(path: str, n: int) -> None:
    ledger = CostLedger(max_usd=None, spend_file=path)
    for _ in range(n):
        ledger.reserve(0.01)
        ledger.settle(0.01, 0.01)


def test_concurrent_processes_add_up(tmp_path):
    spend = tmp_path / SPEND_FILE
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_spend_many, args=(str(spend), 50)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert read_spend(spend) == {"spent_usd": pytest.approx(2.0), "calls": 200}


def test_free_calls_write_nothing_and_a_damaged_record_is_named(tmp_path):
    spend = tmp_path / SPEND_FILE
    ledger = CostLedger(max_usd=1.0, spend_file=spend)
    ledger.reserve(0.0)
    ledger.settle(0.0, 0.0)
    assert not spend.exists()
    spend.write_text("{not json")
    with pytest.raises(ValueError, match=f"{spend}.*delete it"):
        CostLedger(max_usd=1.0, spend_file=spend)


# ---- through run.py --------------------------------------------------------------------------------------------

def long_instruction_pool(tmp_path, n: int = 20):
    """Rows whose instruction (~4000 characters) dominates the tagging prompt, so a call's estimate is close to its
    price and the budget arithmetic of the test is tight."""
    rows = []
    for i, row in enumerate(sample_rows(n)):
        filler = " ".join(f"detail{i}-{k}" for k in range(400))[:3900]
        rows.append({**row, "instruction": f"Question {i}: {row['instruction']} Consider: {filler}"})
    return write_pool(tmp_path / "pool.jsonl", rows)


def test_a_rerun_in_the_same_run_dir_stops_at_the_cap_not_at_twice_it(tmp_path):
    pool = long_instruction_pool(tmp_path)
    run_dir = tmp_path / "run"
    with StubServer(responder=tacos_responder) as stub:
        base = [*llm_overrides(stub.base_url, tmp_path, pool), *PRICED, "stages=[data,clean,tag]", "share_outputs=false"]
        plan = run_cli([*base, "dataset.limit=10", "dry_run=true", f"hydra.run.dir={tmp_path / 'plan'}"])
        assert plan.returncode == 0, plan.stderr[-3000:]
        estimate_10 = json.loads((tmp_path / "plan" / "dry_run.json").read_text())["tag"]["usd"]
        cap = round(1.6 * estimate_10, 4)  # run 1 (10 calls) fits; 20 calls do not

        first = run_cli([*base, "dataset.limit=10", f"budget.max_usd={cap}", f"hydra.run.dir={run_dir}"])
        assert first.returncode == 0, first.stderr[-3000:]
        spent_1 = manifests(run_dir)["tag"]["llm"]["cost_usd"]
        assert stub.count == 10 and 0.4 * cap < spent_1 < 0.75 * cap
        recorded_1 = (run_dir / SPEND_FILE).exists() and read_spend(run_dir / SPEND_FILE)["spent_usd"]

        # 10 more records: this process alone would stay under the cap (each run used to get the whole budget);
        # together with run 1 they would not.
        second = run_cli([*base, "dataset.limit=20", f"budget.max_usd={cap}", f"hydra.run.dir={run_dir}"])
        assert second.returncode == 2, f"run 2 made {stub.count - 10} calls: {second.stderr[-2000:]}"
        assert recorded_1 == pytest.approx(spent_1, abs=1e-5)
        (line,) = error_lines(second.stderr)
        assert "BudgetExceeded" in line and "earlier runs in this run dir" in line
        spent_2 = read_spend(run_dir / SPEND_FILE)["spent_usd"]
        assert spent_1 < spent_2 <= cap
        assert 10 < stub.count < 20

        # A raised budget finishes the job from the cache and the record; the spend record counts every call.
        third = run_cli([*base, "dataset.limit=20", "budget.max_usd=1000", f"hydra.run.dir={run_dir}"])
        assert third.returncode == 0, third.stderr[-3000:]
        assert stub.count == 20
        final = read_spend(run_dir / SPEND_FILE)
        assert final["calls"] == 20 and final["spent_usd"] > cap


def test_a_sweep_reports_the_spend_of_its_jobs(tmp_path):
    pool = write_pool(tmp_path / "pool.jsonl", sample_rows(6))
    sweep = tmp_path / "sweep"
    with StubServer(responder=tacos_responder) as stub:
        out = run_cli(["-m", *llm_overrides(stub.base_url, tmp_path, pool), *PRICED, "stages=[data,clean,tag]",
                       "dataset.limit=3,6", "budget.max_usd=100", f"hydra.sweep.dir={sweep}",
                       "hydra.sweep.subdir=${hydra.job.num}"])
    assert out.returncode == 0, out.stderr[-3000:]
    spent = [read_spend(sweep / job / SPEND_FILE)["spent_usd"] for job in ("0", "1")]
    assert all(s > 0 for s in spent)
    assert f"LLM spend of the sweep: ${sum(spent):.4f} in 2 of 2 jobs" in out.stdout


def test_spend_line_reads_job_dirs(tmp_path):
    for name, usd in (("a", 0.5), ("b", 1.25)):
        (tmp_path / name).mkdir()
        (tmp_path / name / SPEND_FILE).write_text(json.dumps({"spent_usd": usd, "calls": 3}))
    (tmp_path / "free").mkdir()
    line = spend_line([tmp_path / "a", tmp_path / "b", tmp_path / "free"])
    assert line.startswith("LLM spend of the sweep: $1.7500 in 2 of 3 jobs") and str(tmp_path / "b") in line
    assert spend_line([tmp_path / "free"]) is None
