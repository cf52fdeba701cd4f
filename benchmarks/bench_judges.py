"""Which local judge and judgment mode carry signal? Judge (0.5B, 1.5B) x mode (text, log-prob) on the `test` halves
of the bundled label suites (data/judge_eval/), through `tacos judge-eval` (same prompts, client, cache and parser as
the score stage). Writes a Markdown table (for the README), a JSON file, and the measurements the gate reads
(benchmarks/results/judge_eval_measurements.jsonl: committed, so a fresh clone knows how its default judge measured).

    .venv/bin/python benchmarks/bench_judges.py                        # everything (about an hour on 2 cores)
    .venv/bin/python benchmarks/bench_judges.py --judges local --scorers contrastive --modes logprob

Tune prompts and decoding on the `dev` halves only (--split dev); report the `test` halves.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tacos.evaluate_judge import evaluate_judge  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
PAIR_SUITES = ("swapped_response", "mt_bench_pair")
SINGLE_SUITES = ("mt_bench_single",)


def run(judges: list[str], scorers: list[str], modes: list[str], suites: list[str], split: str, cache_dir: Path,
        n_boot: int) -> list:
    rows = []
    for judge in judges:
        for scorer in scorers:
            for mode in modes:
                for suite in suites:
                    if suite in SINGLE_SUITES and scorer != "single":
                        continue  # ratings grade one answer at a time
                    name = f"{suite}_{split}"
                    kind = {"ratings" if suite in SINGLE_SUITES else "pairs":
                            str(REPO / "data" / "judge_eval" / f"{name}.jsonl")}
                    overrides = [f"llm={judge}", f"scorer={scorer}", f"scorer.judgment={mode}",
                                 f"paths.cache_dir={cache_dir}", f"paths.output_dir={cache_dir.parent}", "logger=none",
                                 f"gate.measurements=[{RESULTS / 'judge_eval_measurements.jsonl'}]"]
                    out = cache_dir.parent / "bench_judges" / f"{judge}_{scorer}_{mode}_{name}"
                    result = evaluate_judge(overrides, out=str(out), n_boot=n_boot, **kind)
                    rows.append({"judge": judge, "scorer": scorer, "mode": mode, "suite": name,
                                 **result["metrics"]["overall"]})
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| judge | scorer | mode | suite | n | agreement [95% CI] / Spearman [95% CI] | consistency | "
             "first position | prefers longer | always-longer | s/call |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "agreement" in r:
            ci = r["agreement_ci"] or [None, None]
            main = f"{r['agreement']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if r["agreement"] is not None else "–"
            base = f"{r['baseline_longer']:.2f}"
        else:
            ci = r.get("spearman_ci") or [None, None]
            main = f"ρ {r['spearman']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if r.get("spearman") is not None else "–"
            base = f"ρ {r['baseline_length_spearman']:.2f}" if r.get("baseline_length_spearman") is not None else "–"
        fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
        spc = r["seconds_per_1000"] / 1000 if r.get("seconds_per_1000") else None
        lines.append(f"| {r['judge']} | {r['scorer']} | {r['mode']} | {r['suite']} | {r['n']} | {main} | "
                     f"{fmt(r.get('consistency'))} | "
                     f"{fmt(r.get('first_position_rate'))} | {fmt(r.get('prefers_longer_rate'))} | {base} | "
                     f"{fmt(spc)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--judges", nargs="+", default=["local", "local_large"])
    ap.add_argument("--scorers", nargs="+", default=["contrastive", "single"])
    ap.add_argument("--modes", nargs="+", default=["logprob", "text"])
    ap.add_argument("--suites", nargs="+", default=[*PAIR_SUITES, *SINGLE_SUITES])
    ap.add_argument("--split", default="test", choices=("dev", "test"))
    ap.add_argument("--cache-dir", type=Path, default=REPO / "outputs" / "bench_judges" / "cache")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=RESULTS / "judges.json")
    args = ap.parse_args(argv)
    rows = run(args.judges, args.scorers, args.modes, args.suites, args.split, args.cache_dir, args.n_boot)
    if args.out.is_file():  # keep earlier rows of other configurations (runs may be split by judge or mode)
        done = {(r["judge"], r["scorer"], r["mode"], r["suite"]) for r in rows}
        rows = [r for r in json.loads(args.out.read_text()) if (r["judge"], r["scorer"], r["mode"], r["suite"])
                not in done] + rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    table = markdown(rows)
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
