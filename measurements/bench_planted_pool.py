"""Does a selection leave out what it must? A pool of Alpaca rows with bad rows planted on purpose (answers to other
instructions, answers cut mid-sentence, non-answers: tacos.data.planted), the whole selection run as a user runs it
(`python run.py` with the pool as dataset=jsonl), and how many bad rows each configuration selects, by kind, against
what a random subset of the same size would hold (hypergeometric p = P(random subset holds at most as many)).

    .venv/bin/python measurements/bench_planted_pool.py                               # the default, 3 seeds
    .venv/bin/python measurements/bench_planted_pool.py --configs default random longest ifd llm_logprob
    .venv/bin/python measurements/bench_planted_pool.py --pool 40 --bad 4 3 3 --budget 15 --seeds 0 1 2

Seed s draws the pool's rows from the bundled sample, the rows made bad and their replacements, and is the run's
seed. Tags are cached across configurations (they depend on the instructions only), so only the first one pays them.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tacos.data.planted import KINDS, hypergeometric_p, planted_pool  # noqa: E402
from tacos.records import record_id  # noqa: E402

SAMPLE = REPO / "data" / "sample" / "alpaca_sample.jsonl.gz"
RESULTS = REPO / "measurements" / "results"
# name -> overrides on top of `python run.py dataset=jsonl dataset.path=POOL selection.budget=B seed=S`
CONFIGS = {
    "default": [],
    "random": ["selection=random", "stages=[data,clean,select,export]"],
    "longest": ["selection=longest", "stages=[data,clean,select,export]"],
    "ifd": ["scorer=ifd", "clustering=none", "selection=global_top"],
    "relevance": ["scorer/judge=relevance"],
    "llm_logprob": ["scorer/judge=llm_logprob"],
    "guarded_llm": ["scorer/judge=guarded_llm"],
    "single_llm": ["scorer=single"],
}


def build_pool(seed: int, size: int, bad: dict[str, int], path: Path) -> dict[str, str]:
    """Write the planted pool (Alpaca JSON Lines) to `path`; record id -> kind for its bad rows."""
    rows = [json.loads(line) for line in gzip.open(SAMPLE, "rt", encoding="utf-8")]
    rng = random.Random(seed)
    chosen = rng.sample(range(len(rows)), size)
    inside = set(chosen)
    outside = [rows[i]["output"] for i in range(len(rows)) if i not in inside][:2000]
    pool, kinds = planted_pool([rows[i] for i in chosen], bad, rng, outside)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pool), encoding="utf-8")
    return {record_id(pool[i]["instruction"], pool[i]["input"], pool[i]["output"]): k for i, k in kinds.items()}


def run_one(name: str, seed: int, pool: Path, budget: int, work: Path) -> list[str]:
    run_dir = work / f"{name}_seed{seed}"
    args = [sys.executable, str(REPO / "run.py"), "dataset=jsonl", f"dataset.path={pool}", "dataset.name=planted",
            f"selection.budget={budget}", f"seed={seed}", f"paths.output_dir={work / 'outputs'}",
            f"paths.cache_dir={work / 'cache'}", f"hydra.run.dir={run_dir}", "logger=none", *CONFIGS[name]]
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{name} seed {seed} failed:\n{out.stderr[-3000:]}")
    return [json.loads(line)["id"] for line in (run_dir / "select" / "selected.jsonl").read_text().splitlines()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=["default"], choices=list(CONFIGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--pool", type=int, default=40)
    ap.add_argument("--bad", nargs=3, type=int, default=[4, 3, 3], metavar=KINDS, help="rows of each kind made bad")
    ap.add_argument("--budget", type=int, default=15)
    ap.add_argument("--work", type=Path, default=REPO / "outputs" / "bench_planted")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    bad = dict(zip(KINDS, args.bad))
    rows = []
    for seed in args.seeds:
        pool = args.work / f"pool_seed{seed}.jsonl"
        kinds = build_pool(seed, args.pool, bad, pool)
        for name in args.configs:
            t0 = time.perf_counter()
            chosen = run_one(name, seed, pool, args.budget, args.work)
            picked = [kinds[i] for i in chosen if i in kinds]
            row = {"config": name, "seed": seed, "pool": args.pool, "bad": sum(bad.values()), "budget": args.budget,
                   "selected": len(chosen), "bad_selected": len(picked),
                   **{k: picked.count(k) for k in KINDS},
                   "p_value": round(hypergeometric_p(args.pool, sum(bad.values()), len(chosen), len(picked)), 4),
                   "expected_if_random": round(len(chosen) * sum(bad.values()) / args.pool, 2),
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "planted_pool.json"  # earlier runs' rows for other configurations, seeds or pools are kept
    old = json.loads(out.read_text()) if out.is_file() else []
    now = {(r["config"], r["seed"], r["pool"], r["budget"]) for r in rows}
    keep = [r for r in old if (r["config"], r["seed"], r["pool"], r["budget"]) not in now]
    out.write_text(json.dumps(keep + rows, indent=1) + "\n", encoding="utf-8")
    print("| config | seed | bad selected / selected | off-topic | cut | non-answer | random expects | p |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['seed']} | {r['bad_selected']} / {r['selected']} | {r['off_topic']} | {r['cut']} | "
              f"{r['non_answer']} | {r['expected_if_random']} | {r['p_value']} |")


if __name__ == "__main__":
    main()
