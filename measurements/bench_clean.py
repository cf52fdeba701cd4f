"""What each cleaning check (conf/clean/default.yaml) removes, on rows someone else labelled:

1. AlpaGasus's random 9k Alpaca rows (../shared/data/reference/alpagasus/random_9k.json), split by Claude's rating
   (good: the row is in claude_t45.json, rated >= 4.5; low: the rest). A check should remove few good rows; low rows
   are not all defective, so their column is a rate, not a recall.
2. The real-defects suites (data/judge_eval/real_defects_{dev,test}.jsonl, when built): pairs of a good row and a row
   with one real defect (subset = its kind). Recall per kind: defective rows removed; and good rows removed.
3. The bundled sample pool: rows removed, and the time per 10k rows.
4. With --real-model, the model check `wrong_answer` (conf/clean/with_model_checks.yaml) asks the configured LLM
   (default: the embedded llama.cpp 0.5B; --llm-overrides llm=local_large for the 1.5B): on the hand-labelled simple
   questions (data/clean_eval/simple_questions.jsonl, half right and half wrong answers, split dev/test by
   tacos.data.splits.suite_half), its threshold fitted on dev (Youden's J) and read on test; on the AlpaGasus rows
   the simple-question rule selects (every one Claude rated >= 4.5 plus low ones up to --alpagasus-rows): how many
   it flags; and on the real-defects suites' `wrong_answer` kind when present. Calls are cached (paths.cache_dir).
   Without --real-model the table lists only what the rule selects (no model is started).

    python measurements/bench_clean.py [--reference DIR] [--json OUT] [--real-model [--llm-overrides ...]]
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
    files = sorted(f for f in suites_dir.glob("real_defects_*.jsonl") if "_pool_" not in f.name)  # pairs only
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


# -- the model check ---------------------------------------------------------------------------------------------
QUESTIONS = REPO / "data" / "clean_eval" / "simple_questions.jsonl"


def model_check():
    cfg = OmegaConf.create({"clean": OmegaConf.load(REPO / "conf" / "clean" / "with_model_checks.yaml")})
    return next(c for c in component(cfg, "clean").checks if getattr(c, "uses_llm", False))


def ask(check, records: list[Record], overrides: list[str]) -> dict[str, float | None]:
    """id -> P(wrong) read by `check` for every row it selects (None: unreadable), through one LLM session."""
    from tacos.cleaning import CleanContext
    from tacos.config import to_container
    from tacos.evaluate_judge import compose
    from tacos.llm.calling.session import LLMSession

    cfg = compose(overrides)
    session = LLMSession(component(cfg, "llm"), component(cfg, "paths").cache_dir, to_container(cfg.client),
                         cfg.budget.max_usd)
    ctx = CleanContext(llm=session, seed=int(cfg.seed))
    t0 = time.perf_counter()
    try:
        check.check(records, ctx)
    finally:
        session.close()
    ask.seconds = time.perf_counter() - t0
    out = {m["id"]: m["p_wrong"] for m in ctx.rows}
    out.update({u["id"]: None for u in ctx.not_judged})
    return out


def youden_threshold(scores: list[float], wrong: list[bool]) -> float:
    """The threshold t (flag when score >= t) with the largest recall - false-positive rate on these rows; among
    equals the highest (fewest good rows removed)."""
    pos, neg = max(1, sum(wrong)), max(1, len(wrong) - sum(wrong))
    best, best_j = 1.0, -1.0
    for t in sorted(set(scores), reverse=True):
        j = sum(1 for s, w in zip(scores, wrong) if w and s >= t) / pos - \
            sum(1 for s, w in zip(scores, wrong) if not w and s >= t) / neg
        if j > best_j + 1e-12:
            best, best_j = t, j
    return best


def auc(scores: list[float], wrong: list[bool]) -> float | None:
    pos = [s for s, w in zip(scores, wrong) if w]
    neg = [s for s, w in zip(scores, wrong) if not w]
    if not pos or not neg:
        return None
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))


def rate(k: int, n: int) -> str:
    return f"{k}/{n} ({k / n:.0%})" if n else "-"


def labelled_questions(check, overrides: list[str], threshold: float | None) -> tuple[list[list], float, dict]:
    from tacos.data.splits import suite_half

    rows = list(read_jsonl(QUESTIONS))
    records = [Record.make(i, r["instruction"], r["input"], r["output"]) for i, r in enumerate(rows)]
    p = ask(check, records, overrides)
    seconds_per_call = ask.seconds / max(1, len(p))
    halves: dict[str, list] = {"dev": [], "test": []}
    for r, rec_ in zip(rows, records):
        halves[suite_half(r["instruction"], r["input"])].append((rec_.id, not r["correct"]))
    dev = [(p.get(i), w) for i, w in halves["dev"]]
    fitted = youden_threshold([s for s, _ in dev if s is not None], [w for s, w in dev if s is not None])
    t = fitted if threshold is None else threshold
    table = []
    for half in ("dev", "test"):
        items = [(p.get(i, "not asked"), w) for i, w in halves[half]]
        scored = [(s, w) for s, w in items if isinstance(s, float)]
        n_wrong, n_right = sum(w for _, w in items), sum(not w for _, w in items)
        caught = sum(1 for s, w in scored if w and s >= t)
        false = sum(1 for s, w in scored if not w and s >= t)
        a = auc([s for s, _ in scored], [w for _, w in scored])
        table.append([half, len(items), rate(caught, n_wrong), rate(false, n_right),
                      "-" if a is None else f"{a:.2f}", sum(1 for s, _ in items if s is None),
                      sum(1 for s, _ in items if s == "not asked")])
    return table, t, {"fitted_threshold": fitted, "seconds_per_call": round(seconds_per_call, 2),
                      "p_wrong": {r.id: p.get(r.id) for r in records}}


def alpagasus_model(check, reference: Path, overrides: list[str], threshold: float, max_rows: int,
                    seed: int = 0) -> list[list]:
    import random

    rows = json.loads((reference / "random_9k.json").read_text(encoding="utf-8"))
    good_keys = {(r["instruction"], r["input"], r["output"])
                 for r in json.loads((reference / "claude_t45.json").read_text(encoding="utf-8"))}
    records = [Record.make(i, r["instruction"], r["input"], r["output"]) for i, r in enumerate(rows)]
    selected = [r for r in records if check.selects(r)]
    good = [r for r in selected if (r.instruction, r.input, r.output) in good_keys]
    low = [r for r in selected if (r.instruction, r.input, r.output) not in good_keys]
    low_sample = random.Random(seed).sample(low, max(0, min(len(low), max_rows - len(good))))
    p = ask(check, good + low_sample, overrides)
    table = [["rows selected by the rule (of 9,229)", len(selected), f"{len(good)} good, {len(low)} low"]]
    for name, rs in (("rated good (>= 4.5)", good), ("rated low (sample)", low_sample)):
        flagged = sum(1 for r in rs if (p.get(r.id) or 0.0) >= threshold)
        table.append([f"{name}: flagged", rate(flagged, len(rs)), f"unreadable {sum(p.get(r.id) is None for r in rs)}"])
    return table


def real_defects_model(check, suites_dir: Path, overrides: list[str], threshold: float) -> list[list] | None:
    wrong, good = [], []
    for f in sorted(suites_dir.glob("real_defects_*.jsonl")):
        for i, pr in enumerate(read_jsonl(f)):
            if pr.get("subset") != "wrong_answer":
                continue
            sides = [Record.make(i, pr["instruction"], pr.get("input", ""), pr["output_1"]),
                     Record.make(i, pr.get("instruction_2") or pr["instruction"],
                                 pr.get("input_2") if pr.get("instruction_2") else pr.get("input", ""),
                                 pr["output_2"])]
            good.append(sides[int(pr["preference"]) - 1])
            wrong.append(sides[2 - int(pr["preference"])])
    if not wrong:
        return None
    p = ask(check, wrong + good, overrides)
    out = []
    for name, rs in (("wrong answers", wrong), ("their good partners", good)):
        asked = [r for r in rs if r.id in p]
        flagged = sum(1 for r in asked if (p[r.id] or 0.0) >= threshold)
        out.append([name, len(rs), len(asked), rate(flagged, len(rs))])
    return out


def markdown(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, default=REFERENCE)
    ap.add_argument("--suites", type=Path, default=REPO / "data" / "judge_eval")
    ap.add_argument("--json", type=Path, default=None, help="also write the tables here")
    ap.add_argument("--real-model", action="store_true", help="measure the model check wrong_answer with the real LLM")
    ap.add_argument("--llm-overrides", nargs="*", default=[], help="config overrides for the LLM, e.g. llm=local_large")
    ap.add_argument("--threshold", type=float, default=None,
                    help="read every table at this P(no) (default: the one fitted on the dev half)")
    ap.add_argument("--alpagasus-rows", type=int, default=150, help="AlpaGasus rows the model is asked about")
    ap.add_argument("--prompt", default=None, help="wrong_answer's prompt file instead of the configured one")
    args = ap.parse_args()
    if args.real_model:
        return main_model(args)
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


def main_model(args) -> None:
    check = model_check()
    if args.prompt:
        check.prompt = args.prompt
    out: dict = {"prompt": check.prompt}
    table, t, extra = labelled_questions(check, args.llm_overrides, args.threshold)
    out.update(questions=table, threshold=t, **extra)
    print(f"wrong_answer on hand-labelled simple questions ({extra['seconds_per_call']} s per call; threshold "
          f"P(no) >= {t:.3f}, fitted on dev: {extra['fitted_threshold']:.3f})\n")
    print(markdown(["half", "rows", "wrong answers caught", "right answers flagged", "AUC", "unreadable",
                    "not selected"], table) + "\n")
    ag = args.reference / "alpagasus"
    if (ag / "random_9k.json").is_file():
        out["alpagasus"] = alpagasus_model(check, ag, args.llm_overrides, t, args.alpagasus_rows)
        print("AlpaGasus rows the simple-question rule selects\n")
        print(markdown(["", "", ""], out["alpagasus"]) + "\n")
    rd = real_defects_model(check, args.suites, args.llm_overrides, t)
    if rd is not None:
        out["real_defects"] = rd
        print("Real-defects suites, kind wrong_answer\n")
        print(markdown(["rows", "n", "selected by the rule", "flagged"], rd) + "\n")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
