"""What each cleaning check (conf/clean/default.yaml) removes, on rows someone else labelled:

1. AlpaGasus's random 9k Alpaca rows (../shared/data/reference/alpagasus/random_9k.json), split by Claude's rating
   (good: the row is in claude_t45.json, rated >= 4.5; low: the rest). A check should remove few good rows; low rows
   are not all defective, so their column is a rate, not a recall.
2. The real-defects suites (data/judge_eval/real_defects_{dev,test}.jsonl, when built): pairs of a good row and a row
   with one real defect (subset = its kind). Recall per kind: defective rows removed; and good rows removed.
3. The bundled sample pool: rows removed, and the time per 10k rows.

    python measurements/bench_clean.py [--reference DIR] [--json OUT]
Prints markdown tables (the README's "Cleaning" section holds their last output).
"""
from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from omegaconf import OmegaConf

from tacos.records import Record, read_jsonl
from tacos.stage import component

REPO = Path(__file__).resolve().parents[1]
# ../shared/data/reference next to the checkout (a worktree under wt/ looks one level further up)
REFERENCE = next((p for p in (REPO.parent / "shared" / "data" / "reference",
                              REPO.parent.parent / "shared" / "data" / "reference") if p.is_dir()),
                 REPO.parent / "shared" / "data" / "reference")


def default_cleaner():
    cfg = OmegaConf.create({"clean": OmegaConf.load(REPO / "conf" / "clean" / "default.yaml")})
    return component(cfg, "clean")


def flags(cleaner, records: list[Record]) -> dict[str, dict[str, str]]:
    """check name -> {id: reason}."""
    return {c.name: c.check(records) for c in cleaner.checks}


def alpagasus(cleaner, reference: Path) -> list[list]:
    rows = json.loads((reference / "random_9k.json").read_text(encoding="utf-8"))
    good_keys = {(r["instruction"], r["input"], r["output"])
                 for r in json.loads((reference / "claude_t45.json").read_text(encoding="utf-8"))}
    records = [Record.make(i, r["instruction"], r["input"], r["output"]) for i, r in enumerate(rows)]
    good = {r.id for r in records if (r.instruction, r.input, r.output) in good_keys}
    n_good, n_low = len(good), len(records) - len(good)
    found = flags(cleaner, records)
    found["any check"] = {i: "" for f in found.values() for i in f}
    table = []
    for name, f in found.items():
        g = sum(1 for i in f if i in good)
        table.append([name, len(f), f"{g} ({g / n_good:.1%})", f"{len(f) - g} ({(len(f) - g) / n_low:.1%})"])
    table.append(["rows", len(records), n_good, n_low])
    return table


def real_defects(cleaner, suites_dir: Path) -> list[list] | None:
    files = sorted(suites_dir.glob("real_defects_*.jsonl"))
    if not files:
        return None
    bad: dict[str, list[Record]] = {}
    good: list[Record] = []
    for f in files:
        for i, p in enumerate(read_jsonl(f)):
            sides = [Record.make(i, p["instruction"], p.get("input", ""), p["output_1"]),
                     Record.make(i, p.get("instruction_2") or p["instruction"],
                                 p.get("input_2") if p.get("instruction_2") else p.get("input", ""), p["output_2"])]
            good_side = sides[int(p["preference"]) - 1]
            bad.setdefault(p.get("subset", "?"), []).append(sides[2 - int(p["preference"])])
            good.append(good_side)
    good = list({r.id: r for r in good}.values())
    every = [r for rs in bad.values() for r in rs] + good
    found = flags(cleaner, every)
    removed = {i for f in found.values() for i in f}
    names = [c.name for c in cleaner.checks]
    table = []
    for kind, rs in sorted(bad.items()):
        per = [sum(1 for r in rs if r.id in found[n]) for n in names]
        hit = sum(1 for r in rs if r.id in removed)
        table.append([kind, len(rs), f"{hit} ({hit / len(rs):.0%})", *per])
    g = [sum(1 for r in good if r.id in found[n]) for n in names]
    hit = sum(1 for r in good if r.id in removed)
    table.append(["good rows (removed = false positives)", len(good), f"{hit} ({hit / max(1, len(good)):.1%})", *g])
    return table


def sample_pool(cleaner) -> list[list]:
    path = REPO / "data" / "sample" / "alpaca_sample.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    records = [Record.make(i, r["instruction"], r.get("input", ""), r["output"]) for i, r in enumerate(rows)]
    t0 = time.perf_counter()
    out = cleaner.clean(records)
    seconds = time.perf_counter() - t0
    return [["rows", len(records)], ["removed", len(out.removed)],
            *[[f"  by {k}", v] for k, v in out.counts.items()],
            ["seconds per 10k rows", round(seconds / len(records) * 10_000, 2)]]


def markdown(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, default=REFERENCE)
    ap.add_argument("--suites", type=Path, default=REPO / "data" / "judge_eval")
    ap.add_argument("--json", type=Path, default=None, help="also write the tables here")
    args = ap.parse_args()
    cleaner = default_cleaner()
    out = {}
    ag = args.reference / "alpagasus"
    if (ag / "random_9k.json").is_file():
        out["alpagasus"] = alpagasus(cleaner, ag)
        print("AlpaGasus random 9k (Claude's rating: good >= 4.5)\n")
        print(markdown(["check", "removed", "of them rated good (% of good)", "rated low (% of low)"],
                       out["alpagasus"]) + "\n")
    else:
        print(f"(no AlpaGasus reference at {ag})\n")
    rd = real_defects(cleaner, args.suites)
    if rd is not None:
        out["real_defects"] = rd
        print("Real-defects suites (dev + test): recall per kind\n")
        print(markdown(["kind", "rows", "removed", *[c.name for c in cleaner.checks]], rd) + "\n")
    else:
        print(f"(no real_defects_*.jsonl in {args.suites} yet)\n")
    out["sample"] = sample_pool(cleaner)
    print("Bundled sample pool\n")
    print(markdown(["", "value"], out["sample"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
