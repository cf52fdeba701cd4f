"""Which in-cluster ranker carries a quality signal that length and formatting do not? Every candidate rating judge
against the trivial-baseline ladder (tacos.judges.ladder, rungs fitted on the dev half) on the labelled suites, dev
AND test halves, with the paired test "above the best rung on the same items" (tacos.judges.statistics).

    .venv/bin/python measurements/bench_rankers.py                                 # cheap candidates, every item
    nice -n 10 .venv/bin/python measurements/bench_rankers.py --likelihood 150     # + likelihood signals on <= 150
                                                                                 #   items (ratings) / 75 pairs a half

Writes measurements/results/rankers.{json,md}. Ratings (binary labels): AUC [DeLong 95 % CI]; pairs: agreement over
ALL items (no verdict = a tie) [Wilson 95 % CI]. The best rung is the one highest on the measured items themselves
(a conservative bar); `p` is the one-sided paired p of "candidate above that rung" (DeLong for AUC, exact sign-flip /
McNemar for pairs). A record a guarded candidate screens out ranks below every other record (as selection treats it).
Likelihood signals cost ~2-4 s per record on 2 cores (more on a shared machine): they are measured on a deterministic
subsample (the items with the smallest sha256 of their id; ratings: half of each label), and the rungs are then
measured on the same subsample.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tacos.data.preference_pairs import load_preference_pairs, load_single_ratings  # noqa: E402
from tacos.judges import ladder, statistics  # noqa: E402
from tacos.judges.base import JudgeContext  # noqa: E402
from tacos.records import Record  # noqa: E402

RESULTS = REPO / "measurements" / "results"
SUITE_DIR = REPO / "data" / "judge_eval"
RATING_SUITES = ("alpagasus_rating", "mt_bench_single")
PAIR_SUITES = ("alpagasus_pair", "alpaca_eval_gpt4", "mt_bench_pair", "real_defects", "cross_instruction",
               "swapped_response")
# Suites with one file and no dev half (measurement only): the rungs are fitted on the measured items themselves (an
# optimistic ladder, so a conservative bar for the candidates).
SINGLE_FILE = {"alpaca_eval_gpt4": SUITE_DIR / "external" / "alpaca_eval_gpt4_pairs.jsonl"}
# name -> (Hydra overrides that put the candidate at scorer.judge, needs likelihood passes, what it is)
CANDIDATES: dict[str, tuple[list[str], bool, str]] = {
    "quality_head": (["scorer/judge=head"], False, "logistic head over MiniLM + length/format features"),
    "guarded_head": (["scorer/judge=guarded_head"], True, "relevance + completeness guard, then the head"),
    "relevance": (["scorer/judge=relevance"], False, "MiniLM cos(instruction, response)"),
    "response_likelihood": (["scorer/judge=response_likelihood"], True, "mean log P(r|i), 0.5B"),
    "guarded_likelihood": (["scorer/judge=guarded_likelihood"], True, "the old default: guard + response likelihood"),
    "ifd": (["scorer/judge=ifd"], True, "Cherry IFD (higher = harder), IFD >= 1 screened, 0.5B"),
    "likelihood_gain": (["scorer/judge=likelihood_gain"], True, "log P(r|i) - log P(r), 0.5B"),
    "completeness": (["scorer/judge=completeness"], True, "log P(end | i, r), 0.5B"),
}
LOWEST = -1e18  # a screened record: below every rated one


def rater(overrides: list[str]):
    """The candidate as a RatingJudge (a guarded pair judge over a rating judge is unwrapped into guard + rater)."""
    from tacos.evaluate_judge import compose, judge_at
    from tacos.judges.combined import GuardedPairJudge, GuardedRatingJudge, RatingPairJudge

    judge = judge_at(compose(overrides), "scorer.judge")
    if isinstance(judge, GuardedPairJudge) and isinstance(judge.judge, RatingPairJudge):
        judge = GuardedRatingJudge(judge.guard, judge.judge.judge, name=judge.name)
    if isinstance(judge, RatingPairJudge):
        judge = judge.judge
    judge.validate()
    return judge


def scores(judge, records: list[Record], ctx: JudgeContext) -> list[float | None]:
    out = []
    for x in judge.rate(records, ctx):
        out.append(LOWEST if x.value is None and x.reason.startswith(("screened", "empty")) else x.value)
    return out


def subsample(items: list, n: int | None) -> list:
    """The n items with the smallest sha256 of their id; ratings: n / 2 of each label (AUC does not read the class
    rate, and 10 % positives in 100 items would leave 10 to measure on), in file order."""
    if n is None or len(items) <= n:
        return items
    first = lambda xs, k: sorted(xs, key=lambda x: hashlib.sha256(x.id.encode()).hexdigest())[:k]  # noqa: E731
    if hasattr(items[0], "rating"):
        keep = {x.id for v in sorted({x.rating for x in items}) for x in first([x for x in items if x.rating == v], n // 2)}
    else:
        keep = {x.id for x in first(items, n)}
    return [x for x in items if x.id in keep]


def rating_cell(name: str, values: list, rungs: dict[str, list], labels: list[float]) -> dict:
    if len(set(labels)) != 2:  # graded labels (MT-Bench 1-10): Spearman, no paired test (report only)
        return spearman_cell(name, values, rungs, labels)
    best = max(rungs, key=lambda r: statistics.auc(rungs[r], labels) or 0.0)
    return {"candidate": name, "n": len(labels), "positives": int(sum(labels)), "metric": "auc",
            "value": statistics.auc(values, labels), "ci": statistics.auc_ci(values, labels),
            "best_rung": best, "best_rung_value": statistics.auc(rungs[best], labels),
            "p_above_best_rung": _p(statistics.delong_paired_p(values, rungs[best], labels)),
            "rungs": {r: statistics.auc(v, labels) for r, v in rungs.items()}}


def spearman_cell(name: str, values: list, rungs: dict[str, list], labels: list[float]) -> dict:
    from scipy.stats import spearmanr

    def rho(xs):
        keep = [(x, y) for x, y in zip(xs, labels) if x is not None and x != LOWEST]
        return round(float(spearmanr(*zip(*keep)).statistic), 4) if len(keep) > 2 else None

    best = max(rungs, key=lambda r: rho(rungs[r]) or -1.0)
    return {"candidate": name, "n": len(labels), "metric": "spearman", "value": rho(values), "ci": None,
            "best_rung": best, "best_rung_value": rho(rungs[best]), "p_above_best_rung": None,
            "rungs": {r: rho(v) for r, v in rungs.items()}}


def pair_cell(name: str, preds: list, rungs: dict[str, list], labels: list[float]) -> dict:
    def agree(ps):
        return [ladder.agreement(p, y) for p, y in zip(ps, labels)]

    mine = agree(preds)
    best = max(rungs, key=lambda r: sum(agree(rungs[r])))
    theirs = agree(rungs[best])
    n = len(labels)
    return {"candidate": name, "n": n, "metric": "agreement", "value": round(sum(mine) / n, 4),
            "ci": statistics.wilson(sum(mine), n), "best_rung": best, "best_rung_value": round(sum(theirs) / n, 4),
            "p_above_best_rung": _p(statistics.sign_flip_p([a - b for a, b in zip(mine, theirs)])),
            "tie_rate": round(sum(p in (None, 1.5) for p in preds) / n, 4),
            "rungs": {r: round(sum(agree(v)) / n, 4) for r, v in rungs.items()}}


def _p(p):
    return None if p is None else round(float(p), 4)


def memoize_embeddings() -> None:
    """One MiniLM pass per distinct text in this process: the head, the relevance candidate and the relevance rung
    embed the same texts (the benchmark only; values equal to a fresh pass up to float32 batching noise)."""
    import numpy as np

    from tacos.method import clustering

    original, memo = clustering.embed_texts, {}

    def embed_texts(texts, model, batch_size=128, device="cpu", progress=True):
        todo = list(dict.fromkeys(t for t in texts if (model, t) not in memo))
        if todo:
            for t, e in zip(todo, original(todo, model, batch_size=batch_size, device=device, progress=progress)):
                memo[(model, t)] = e
        return np.stack([memo[(model, t)] for t in texts]) if texts else original(texts, model)

    clustering.embed_texts = embed_texts


def measure(candidates: list[str], suites: list[str], halves: list[str], likelihood_n: int | None,
            cache_dir: Path) -> list[dict]:
    from tacos.llm.calling.cache import CallCache

    memoize_embeddings()
    relevance = ladder.minilm_relevance()
    rows = []
    cache = CallCache(cache_dir)
    try:
        for suite in suites:
            ratings = suite in RATING_SUITES
            load = load_single_ratings if ratings else load_preference_pairs
            single = SINGLE_FILE.get(suite)
            dev_file = single or SUITE_DIR / f"{suite}_dev.jsonl"
            if not dev_file.is_file():
                print(f"skip {suite}: {dev_file.name} not built", flush=True)
                continue
            dev_items = load(dev_file)
            for half in (["all"] if single else halves):
                file = single or SUITE_DIR / f"{suite}_{half}.jsonl"
                if not file.is_file():
                    print(f"skip {file.name}: not built", flush=True)
                    continue
                all_items = load(file)
                for name in candidates:
                    overrides, slow, _ = CANDIDATES[name]
                    if slow and likelihood_n == 0:
                        continue
                    n = None if not slow else likelihood_n if ratings else (likelihood_n or 0) // 2 or None
                    items = subsample(all_items, n)
                    ctx = JudgeContext(cache=cache, progress=False)
                    judge = rater(overrides)
                    if ratings:
                        records = [Record.make(k, r.instruction, r.input, r.output, source=r.id)
                                   for k, r in enumerate(items)]
                        rungs = {r.name: r.fit(dev_items).predict(items) for r in ladder.rating_rungs(relevance)}
                        cell = rating_cell(name, scores(judge, records, ctx), rungs, [r.rating for r in items])
                    else:
                        records = [x for p in items for x in p.records()]
                        s = scores(judge, records, ctx)
                        preds = [ladder.higher_wins(s[2 * k], s[2 * k + 1]) for k in range(len(items))]
                        rungs = {r.name: r.fit(dev_items).predict(items) for r in ladder.pair_rungs(relevance)}
                        cell = pair_cell(name, preds, rungs, [p.preference for p in items])
                    cell.update(suite=suite, half=half, subsampled=len(items) < len(all_items),
                                seconds_per_item=round(ctx.stats.get("seconds", 0.0) / max(1, len(records)), 3))
                    rows.append(cell)
                    print(json.dumps(cell), flush=True)
    finally:
        cache.close()
    return rows


def _fmt(r: dict) -> str:
    ci = r.get("ci")
    star = " **↑**" if r["p_above_best_rung"] is not None and r["p_above_best_rung"] < 0.05 else ""
    base = f"{r['value']:.2f}" if r["value"] is not None else "–"
    return base + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "") + f" (n {r['n']}{'*' if r['subsampled'] else ''})" \
        + f" / {r['best_rung']} {r['best_rung_value']:.2f}" \
        + (f", p {r['p_above_best_rung']}" if r["p_above_best_rung"] is not None else "") + star


def markdown(rows: list[dict]) -> str:
    columns = sorted({(r["suite"], r["half"]) for r in rows},
                     key=lambda c: ((RATING_SUITES + PAIR_SUITES).index(c[0]), c[1]))
    head = ["candidate", *[f"{s} {h}" for s, h in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    cell = {(r["candidate"], r["suite"], r["half"]): r for r in rows}
    for name in [c for c in CANDIDATES if any(k[0] == c for k in cell)]:
        lines.append(f"| {name} | " + " | ".join(_fmt(cell[(name, s, h)]) if (name, s, h) in cell else ""
                                                for s, h in columns) + " |")
    return ("AUC (binary ratings; Spearman ρ for graded ones, no paired test) / agreement over all items (pairs) [95 % CI] (n; * = deterministic subsample) / the best "
            "rung on the same items and the one-sided paired p of being above it; ↑ = p < 0.05.\n\n"
            + "\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--suites", nargs="+", default=[*RATING_SUITES, *PAIR_SUITES])
    ap.add_argument("--halves", nargs="+", default=["dev", "test"])
    ap.add_argument("--likelihood", type=int, default=0,
                    help="items per rating half (pairs: half as many) for the likelihood candidates; 0 = skip them")
    ap.add_argument("--cache", type=Path, default=REPO / "outputs" / "bench_rankers" / "cache")
    args = ap.parse_args(argv)
    rows = measure(args.candidates, args.suites, args.halves, args.likelihood or 0, args.cache)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "rankers.json"
    old = json.loads(out.read_text()) if out.is_file() else []
    now = {(r["candidate"], r["suite"], r["half"]) for r in rows}
    merged = [r for r in old if (r["candidate"], r["suite"], r["half"]) not in now] + rows
    out.write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "rankers.md").write_text(markdown(merged) + "\n", encoding="utf-8")
    print(markdown(merged))


if __name__ == "__main__":
    main()
