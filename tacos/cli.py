"""The `tacos` command (pyproject [project.scripts]); `python run.py` stays the entry point for running stages.

    tacos report DIR [--out OUT]    the results of a run dir or of a whole sweep dir as report.md / report.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _report(args: argparse.Namespace) -> int:
    from tacos.eval.results import find_runs, write_report

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
          f"{out / 'report.csv'}, {out / 'summary.csv'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tacos", description="TACOS utilities (stages run with `python run.py`).")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="collect judge results of a run dir or a sweep dir into one table")
    rep.add_argument("dir", help="a run dir, or a sweep dir holding many run dirs")
    rep.add_argument("--out", help="where report.md / report.csv / summary.csv go (default: DIR)")
    rep.set_defaults(func=_report)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
