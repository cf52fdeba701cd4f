"""The `tacos` command (pyproject [project.scripts]).

    tacos run [OVERRIDES...]        the stages, exactly as `python run.py [OVERRIDES...]` (the same Hydra main)
    tacos report DIR [--out OUT] [--wandb auto|on|off]   the results of a run dir or of a whole sweep dir as
                                    report.md / report.csv / figures (and a W&B run when the runs logged to W&B)
    tacos plan DIR                  the dry-run forecasts (dry_run.json) of every run under DIR as one grid
    tacos judge-eval --pairs FILE [--judge scorer.judge] [OVERRIDES...]   agreement of a judge with labelled pairs
    tacos judge-eval --ratings FILE scorer=single [OVERRIDES...]          correlation with labelled ratings
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _report(args: argparse.Namespace) -> int:
    from tacos.benchmarks.report import find_runs, write_report

    root = Path(args.dir)
    if not root.is_dir():
        print(f"error: {root} is not a folder (give a run dir or a sweep dir)", file=sys.stderr)
        return 2
    runs = find_runs(root)
    if not runs:
        print(f"error: no run dirs under {root} (no <run>/<stage>/manifest.json)", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else root
    rep = write_report(root, out, runs)
    print(rep["markdown"])
    print(f"{rep['runs']} run dir(s), {rep['judged_runs']} with judge results -> {out / 'report.md'}, "
          f"{out / 'report.csv'}, {out / 'summary.csv'}, " + ", ".join(str(p) for p in rep["plots"]))
    if args.wandb == "on" or (args.wandb == "auto" and _logged_to_wandb(runs)):
        from tacos.tracking import log_report

        group = log_report(root, out, rep, group=args.wandb_group)
        print(f"W&B: the report and its figures logged as a run of group {group} (in {out / 'wandb'})")
    return 0


def _logged_to_wandb(runs) -> bool:
    from tacos.tracking import RUN_FILE

    return any((r.path / RUN_FILE).is_file() for r in runs)


PLAN_COLUMNS = ["run", "llm_calls", "cached", "prompt_tokens", "completion_tokens", "usd", "gpu_hours", "cpu_hours",
                "exact"]


def plan_rows(root: Path) -> list[list]:
    """One row per run dir under root that holds a dry_run.json (its `total`), sorted by path."""
    import json

    rows = []
    for f in sorted(root.rglob("dry_run.json")):
        total = json.loads(f.read_text(encoding="utf-8")).get("total", {})
        rows.append([str(f.parent.relative_to(root)) or ".", total.get("calls", 0), total.get("cache_hits", 0),
                     total.get("prompt_tokens", 0), total.get("completion_tokens", 0),
                     round(total.get("usd", 0.0), 4), round(total.get("gpu_hours", 0.0), 2),
                     round(total.get("cpu_hours", 0.0), 2), "yes" if total.get("exact", False) else "estimate"])
    return rows


def over_budget(root: Path) -> list[str]:
    """The dry runs under root whose forecast exceeds their budget.max_usd, each with what to set."""
    import json

    from tacos.local_compute import budget_warning

    out = []
    for f in sorted(root.rglob("dry_run.json")):
        line = budget_warning(json.loads(f.read_text(encoding="utf-8")).get("budget") or {})
        if line:
            out.append(f"{f.parent.relative_to(root)}: {line}")
    return out


def _plan(args: argparse.Namespace) -> int:
    import csv

    root = Path(args.dir)
    rows = plan_rows(root) if root.is_dir() else []
    if not rows:
        print(f"error: no dry_run.json under {root} (run `python run.py -m ... dry_run=true` first)", file=sys.stderr)
        return 2
    width = max(len(r[0]) for r in rows + [["total"]])
    print(f"{'run':<{width}} {'calls':>9} {'cached':>8} {'in tok':>12} {'out tok':>11} {'usd':>10} {'gpu h':>9} "
          f"{'cpu h':>9}  exact")
    for r in rows:
        print(f"{r[0]:<{width}} {r[1]:>9} {r[2]:>8} {r[3]:>12} {r[4]:>11} {r[5]:>10.2f} {r[6]:>9.1f} {r[7]:>9.1f}  "
              f"{r[8]}")
    total = ["total", *(sum(r[i] for r in rows) for i in range(1, 8)),
             "yes" if all(r[8] == "yes" for r in rows) else "estimate"]
    print(f"{'total':<{width}} {total[1]:>9} {total[2]:>8} {total[3]:>12} {total[4]:>11} {total[5]:>10.2f} "
          f"{total[6]:>9.1f} {total[7]:>9.1f}  {total[8]}")
    over = over_budget(root)
    if over:
        print(f"warning: {len(over)} run(s) would stop at their budget.max_usd:", file=sys.stderr)
        for line in over:
            print(f"  {line}", file=sys.stderr)
    with open(root / "plan.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([PLAN_COLUMNS, *rows, total])
    print(f"{len(rows)} run(s) -> {root / 'plan.csv'}  (LLM calls shared between runs of one sweep are counted once "
          f"per run here; the cache and the stage store make the real total lower)")
    return 0


def _judge_eval(args: argparse.Namespace) -> int:
    from tacos.evaluate_judge import evaluate_judge, format_table

    if bool(args.pairs) == bool(args.ratings):
        print("error: give exactly one of --pairs FILE (preference pairs) or --ratings FILE (single ratings)",
              file=sys.stderr)
        return 2
    result = evaluate_judge(args.overrides, pairs=args.pairs, ratings=args.ratings, judge_path=args.judge,
                            out=args.out, n_boot=args.n_boot)
    print(f"\njudge {result['judge_name']} ({result['judge_path']}, key {result['judge_key']}"
          f"{', llm ' + result['llm'] if result['llm'] else ''}) on {result['suite']}")
    print(format_table(result))
    print(f"-> {result['out_dir']}/judge_eval.json")
    return 0


def _run_stages(args: list[str]) -> int:
    """`tacos run ARGS` = `python run.py ARGS`: Hydra reads its overrides (and -m, --help, --cfg ...) from sys.argv."""
    from tacos.app import main as app

    sys.argv = ["tacos run", *args]
    app()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # before argparse: every argument after `run` is Hydra's
        return _run_stages(argv[1:])
    parser = argparse.ArgumentParser(prog="tacos", description="TACOS: `tacos run [OVERRIDES]` runs the stages "
                                     "(= python run.py); the other commands read what runs wrote.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the stages: tacos run [OVERRIDES...] = python run.py [OVERRIDES...] "
                               "(tacos run --help lists them)")
    rep = sub.add_parser("report", help="collect judge results of a run dir or a sweep dir into one table")
    rep.add_argument("dir", help="a run dir, or a sweep dir holding many run dirs")
    rep.add_argument("--out", help="where report.md / report.csv / summary.csv go (default: DIR)")
    rep.add_argument("--wandb", choices=("auto", "on", "off"), default="auto",
                     help="log the report (figures, tables) as a W&B run in the runs' group; auto: when the runs "
                          "below DIR logged to W&B")
    rep.add_argument("--wandb-group", help="the W&B group (default: the one the runs logged to)")
    rep.set_defaults(func=_report)
    pl = sub.add_parser("plan", help="collect the dry-run forecasts of a sweep dir into one grid (plan.csv)")
    pl.add_argument("dir", help="a sweep dir (or any folder) holding run dirs with dry_run.json")
    pl.set_defaults(func=_plan)
    je = sub.add_parser("judge-eval", help="measure the configured judge against labelled preference pairs or ratings")
    je.add_argument("--pairs", help="alpaca_eval-format pairs (JSON/JSONL): instruction, output_1, output_2, preference")
    je.add_argument("--ratings", help="single-answer ratings (JSON/JSONL): instruction, output, rating")
    je.add_argument("--judge", default="scorer.judge",
                    help="where the judge sits in the config (default scorer.judge: what the score stage uses; "
                         "judge: the judge stage's pair judge)")
    je.add_argument("--out", help="output folder (default: <paths.output_dir>/judge_eval/<time>_<suite>)")
    je.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    je.add_argument("overrides", nargs="*", help="Hydra overrides, as for run.py (llm=local_large scorer=single ...)")
    je.set_defaults(func=_judge_eval)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
