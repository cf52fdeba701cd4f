"""Which judge carries signal here? Every candidate judge x every labelled suite, through `tacos judge-eval` (the
same judge objects, prompts, read-outs, client, cache and parsers as the score stage). Writes a Markdown table (for
the README), a JSON file and, for the `test` halves, the measurements the gate reads
(measurements/results/judge_measurements.jsonl: committed, so a fresh clone knows how its default judge measured).

    .venv/bin/python measurements/bench_judges.py --split dev                  # tune here (thresholds, weights, prompts)
    .venv/bin/python measurements/bench_judges.py --split test                 # report here
    .venv/bin/python measurements/bench_judges.py --split test --candidates default relevance --suites refined_balanced

Tune on the `dev` halves only; report the `test` halves. Beside every judge: the ladder of trivial rungs (fitted on
the dev half by `tacos judge-eval`), the best rung and the one-sided paired p of the judge above it (what the gate
reads); agreement is over ALL items (no verdict = a tie) with Wilson intervals. Suites not built yet are skipped.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tacos.evaluate_judge import evaluate_judge  # noqa: E402

RESULTS = REPO / "measurements" / "results"
COMMITTED = RESULTS / "judge_measurements.jsonl"
PAIR_SUITES = ("swapped_response", "cross_instruction", "real_defects", "alpagasus_pair", "refined_balanced",
               "mt_bench_pair")
RATING_SUITES = ("alpagasus_rating", "mt_bench_single")
# name -> (Hydra overrides, what it is). A rating judge is measured on pairs as the contrastive scorer uses it
# (the higher rating wins) and on ratings through scorer=single.
CANDIDATES: dict[str, tuple[list[str], str]] = {
    "default": ([], "guard (relevance + completeness) + response likelihood, 0.5B scoring model"),
    "relevance": (["scorer/judge=relevance"], "MiniLM cos(instruction, response)"),
    "likelihood_gain": (["scorer/judge=likelihood_gain"], "log P(r|i) - log P(r), 0.5B"),
    "ifd": (["scorer/judge=ifd"], "Cherry IFD (higher = harder), IFD >= 1 screened, 0.5B"),
    "response_likelihood": (["scorer/judge=response_likelihood"], "mean log P(r|i), 0.5B"),
    "completeness": (["scorer/judge=completeness"], "log P(end | i, r), 0.5B"),
    "llm_logprob": (["scorer/judge=llm_logprob"], "LLM pairwise, forced one-token read-out, 0.5B"),
    "llm_text": (["scorer/judge=llm_text"], "LLM pairwise, two JSON scores per call (the reference), 0.5B"),
    "guarded_llm": (["scorer/judge=guarded_llm"], "guard + LLM pairwise forced read-out, 0.5B"),
    "llm_digit": (["scorer=single"], "LLM single rating, expected digit, 0.5B"),
    "llm_logprob_1.5b": (["scorer/judge=llm_logprob", "llm=local_large"], "LLM pairwise forced read-out, 1.5B"),
    "llm_text_1.5b": (["scorer/judge=llm_text", "llm=local_large"], "LLM pairwise JSON scores, 1.5B"),
    "default_1.5b": (["lm=local_large"], "the default with the 1.5B scoring model"),
}
RATING_JUDGES = {"relevance", "likelihood_gain", "ifd", "response_likelihood", "completeness", "llm_digit"}


def run(candidates: list[str], suites: list[str], split: str, work: Path, n_boot: int, record: bool) -> list[dict]:
    rows = []
    for name in candidates:
        overrides, _ = CANDIDATES[name]
        for suite in suites:
            ratings = suite in RATING_SUITES
            if ratings and name not in RATING_JUDGES:
                continue  # ratings grade one answer at a time
            file = REPO / "data" / "judge_eval" / f"{suite}_{split}.jsonl"
            if not file.is_file():
                print(f"skipped: {file} does not exist (build it with scripts/build_judge_eval_suites.py)", flush=True)
                continue
            extra = ["scorer=single", *[o for o in overrides if o != "scorer=single"]] if ratings else overrides
            measurements = f"gate.measurements=[{COMMITTED}]" if record else \
                f"gate.measurements=[{work / 'measurements.jsonl'}]"
            common = [f"paths.output_dir={work}", f"paths.cache_dir={work / 'cache'}", "logger=none", measurements]
            result = evaluate_judge(extra + common, out=str(work / "bench_judges" / f"{name}_{suite}_{split}"),
                                    n_boot=n_boot, **({"ratings": str(file)} if ratings else {"pairs": str(file)}))
            rows.append({"candidate": name, "suite": f"{suite}_{split}", "judge_key": result["judge_key"],
                         **result["metrics"]["overall"]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _ci(v, ci) -> str:
    return "–" if v is None else f"{v:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{v:.2f}"


def headline(r: dict) -> tuple[str, float | None, list | None]:
    """(metric, value, CI) a row is ranked by: agreement over all items for pairs (valid-only agreement for rows
    measured before the ladder), AUC for binary ratings, else Spearman."""
    if "agreement" in r:
        metric = "agreement_all" if r.get("agreement_all") is not None else "agreement"
    else:
        metric = "auc" if r.get("auc") is not None else "spearman"
    return metric, r.get(metric), r.get(f"{metric}_ci")


def _prefix(metric: str) -> str:
    return {"auc": "AUC ", "spearman": "ρ "}.get(metric, "")


def _best(r: dict) -> str:
    if not r.get("best_rung"):
        return "–"
    return f"{r['best_rung']} {_ci(r.get('best_rung_value'), r.get('best_rung_ci'))}"


def markdown(rows: list[dict]) -> str:
    lines = ["| judge | suite | n | agreement (all items) / AUC / Spearman [95% CI] | valid-only agreement | "
             "best trivial rung [95% CI] | p (judge > best rung) | invalid | first position | answer mass | s/item |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        metric, v, ci = headline(r)
        main = _prefix(metric) + _ci(v, ci)
        valid = _ci(r.get("agreement"), r.get("agreement_ci")) if "agreement" in r else "–"
        cells = [r["candidate"], r["suite"], r["n"], main, valid, _best(r), r.get("p_vs_best_rung"),
                 r.get("invalid_rate"), r.get("first_position_win_rate"), r.get("mean_answer_mass"),
                 r.get("seconds_per_item")]
        lines.append("| " + " | ".join("–" if c is None else f"{c:.3f}" if isinstance(c, float) else str(c)
                                       for c in cells) + " |")
    return "\n".join(lines)


def wide_markdown(rows: list[dict], split: str) -> str:
    """One row per judge, one column per suite (agreement over all items, AUC or Spearman, with its CI; † where the
    one-sided paired test puts it above the suite's best trivial rung, p < 0.05), the ladder's rungs first (fitted
    on the dev half; * the best rung of the suite) and the seconds per labelled item (the slowest suite's) last: the
    README table."""
    suites = [s for s in (*PAIR_SUITES, *RATING_SUITES) if any(r["suite"] == f"{s}_{split}" for r in rows)]
    cell = {(r["candidate"], r["suite"]): r for r in rows}
    head = ["judge", *[s.replace("_", " ") for s in suites], "s/item"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ladder = {s: next((r for r in rows if r["suite"] == f"{s}_{split}" and r.get("ladder")), None) for s in suites}
    rungs = list(dict.fromkeys(k for r in ladder.values() if r for k in r["ladder"]))
    for rung in rungs:
        cells = []
        for s in suites:
            r = ladder[s]
            entry = (r or {}).get("ladder", {}).get(rung)
            if not entry:
                cells.append("")
                continue
            metric = r["ladder_metric"]
            cells.append(_prefix(metric) + _ci(entry.get(metric), entry.get(f"{metric}_ci")) + ("*" if r["best_rung"] == rung
                                                                                      else ""))
        lines.append(f"| *{rung}* | " + " | ".join(cells) + " | 0 |")
    for name in [c for c in CANDIDATES if any(k[0] == c for k in cell)]:
        cells, secs = [], []
        for s in suites:
            r = cell.get((name, f"{s}_{split}"))
            if r is None:
                cells.append("")
                continue
            metric, v, ci = headline(r)
            p = r.get("p_vs_best_rung")
            cells.append(_prefix(metric) + _ci(v, ci) + (" †" if p is not None and p < 0.05 else ""))
            secs.append(r.get("seconds_per_item") or 0)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {max(secs):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--suites", nargs="+", default=[*PAIR_SUITES, *RATING_SUITES])
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--work", type=Path, default=REPO / "outputs" / "bench_judges")
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args(argv)
    # Only test-half measurements are committed for the gate; dev halves are for tuning and stay local.
    rows = run(args.candidates, args.suites, args.split, args.work, args.n_boot, record=args.split == "test")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"judges_{args.split}"
    # Keep the rows of earlier runs for the candidates and suites not measured now (one table for the README).
    old = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").is_file() else []
    now = {(r["candidate"], r["suite"]) for r in rows}
    order = list(CANDIDATES)
    merged = sorted([r for r in old if (r["candidate"], r["suite"]) not in now] + rows,
                    key=lambda r: (order.index(r["candidate"]) if r["candidate"] in order else 99, r["suite"]))
    stem.with_suffix(".json").write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(merged) + "\n\n" + wide_markdown(merged, args.split) + "\n",
                                       encoding="utf-8")
    print(markdown(rows))


if __name__ == "__main__":
    main()
