"""Does a selection leave out the defects real instruction data has? The real-defects pool of one half
(data/judge_eval/real_defects_pool_{dev,test}.jsonl: 28 good Alpaca / LIMA / Evol-Instruct rows and 12 rows with real
defects: answers invented for a link or an attachment, merged tasks, placeholder outputs, wrong answers, action
claims, answers cut after ~512 tokens; built by scripts/build_judge_eval_suites.py), selected as a user runs it
(`python run.py` with the pool as dataset=jsonl; the runner is bench_planted_pool.py's), and how many defect rows each
configuration selects, by kind, beside a selector with no signal: a random subset of the same size holds
hypergeometrically many, and passes the target (at most --pass-bar defects) with probability P(X <= bar).

    .venv/bin/python benchmarks/bench_real_defects.py                                   # test pool, 3 configs, 3 seeds
    .venv/bin/python benchmarks/bench_real_defects.py --half dev --configs default --seeds 0

The pool is fixed; the seed is the run's seed (it moves clustering, sampling and every seeded step of a run).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from bench_planted_pool import CONFIGS, RESULTS, REPO, run_one  # noqa: E402
from tacos.data.planted import hypergeometric_p  # noqa: E402
from tacos.records import record_id  # noqa: E402

POOLS = REPO / "data" / "judge_eval"
# The real-model CI test (tests/test_real_llm_pipeline.py): the smoke's 12 good rows + the dev pool's 12 defect rows,
# budget 8; it passes when >= 7 rows and <= 1 defect are selected. A selector with no signal passes with probability
# <= 0.034 (7 selected; 0.014 with 8); tests/benchmarks/test_real_defects_pool.py asserts <= 0.05.
CI_CHECK = {"good": 12, "defects": 12, "budget": 8, "min_selected": 7, "pass_bar": 1}


def no_signal_pass_rate(pool: int, bad: int, selected: int, bar: int) -> float:
    """P(a selector with no signal, i.e. a random subset of `selected` rows, holds at most `bar` of the `bad` rows)."""
    return hypergeometric_p(pool, bad, selected, bar)


def defects_of(path: Path) -> dict[str, str]:
    """record id -> defect kind, for the pool's defect rows."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {record_id(r["instruction"], r["input"], r["output"]): r["defect"] for r in rows if r["defect"]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--half", choices=("dev", "test"), default="test")
    ap.add_argument("--configs", nargs="+", default=["default", "random", "longest"], choices=list(CONFIGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=15)
    ap.add_argument("--pass-bar", type=int, default=1, help="a run passes when it selects at most this many defects")
    ap.add_argument("--work", type=Path, default=REPO / "outputs" / "bench_real_defects")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    pool = POOLS / f"real_defects_pool_{args.half}.jsonl"
    kinds = defects_of(pool)
    size = sum(1 for line in pool.read_text(encoding="utf-8").splitlines() if line.strip())
    rows = []
    for seed in args.seeds:
        for name in args.configs:
            t0 = time.perf_counter()
            chosen = run_one(name, seed, pool, args.budget, args.work)
            picked = [kinds[i] for i in chosen if i in kinds]
            rows.append({"config": name, "half": args.half, "seed": seed, "pool": size, "bad": len(kinds),
                         "budget": args.budget, "selected": len(chosen), "bad_selected": len(picked),
                         "kinds": dict(sorted(Counter(picked).items())), "passed": len(picked) <= args.pass_bar,
                         "p_value": round(hypergeometric_p(size, len(kinds), len(chosen), len(picked)), 4),
                         "expected_if_random": round(len(chosen) * len(kinds) / size, 2),
                         "no_signal_pass_rate": round(no_signal_pass_rate(size, len(kinds), len(chosen),
                                                                          args.pass_bar), 4),
                         "seconds": round(time.perf_counter() - t0, 1)})
            print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "real_defects_pool.json"  # earlier rows for other configurations, seeds or halves are kept
    old = json.loads(out.read_text()) if out.is_file() else []
    now = {(r["config"], r["half"], r["seed"], r["budget"]) for r in rows}
    out.write_text(json.dumps([r for r in old if (r["config"], r["half"], r["seed"], r["budget"]) not in now] + rows,
                              indent=1) + "\n", encoding="utf-8")
    print(f"| config | seed | defects selected / selected | kinds | passes (<= {args.pass_bar}) | random expects | "
          "p | a no-signal selector passes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['seed']} | {r['bad_selected']} / {r['selected']} | "
              f"{', '.join(f'{k} {v}' for k, v in r['kinds'].items()) or '-'} | {'yes' if r['passed'] else 'no'} | "
              f"{r['expected_if_random']} | {r['p_value']} | {r['no_signal_pass_rate']:.1%} |")


if __name__ == "__main__":
    main()
