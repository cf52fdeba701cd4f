"""Pairwise judging of our answers against baselines' on the test sets (judge.kind=pairwise).

Every question is judged in both orders (our answer as Assistant 1, then the baseline's); per test set and baseline:
win/tie/lose, score (win - lose)/n + 1 with a seeded bootstrap 95% CI, order consistency, invalid and missing counts
(the rules: tacos.eval.judging). Files: <stage>/pairwise/{judgments,verdicts}.jsonl, results.json and one
win/tie/lose chart per baseline. Not to be confused with tacos.strategies.pairwise (contrastive data scoring).
"""
from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass

from tacos.data.benchmark_sets import load_test_set
from tacos.eval.answer_files import Answers
from tacos.eval.judging import combine, pairwise_summary, parse_pairwise_scores, verdict
from tacos.prompts import prompts_hash, read_prompt, render
from tacos.records import TestQuestion, write_jsonl
from tacos.stage import write_json_atomic

log = logging.getLogger(__name__)

ORDERS = ("ours_first", "baseline_first")
PAIRWISE_DIR = "pairwise"
STAT_COLUMNS = ["baseline", "test_set", "win", "tie", "lose", "n", "score", "ci_low", "ci_high", "consistency",
                "invalid", "missing"]


@dataclass(frozen=True)
class Match:
    """One question to judge: our answer and one baseline's."""

    test_set: str
    baseline: str
    question_id: str
    question: str
    ours: str
    theirs: str


def question_text(q: TestQuestion) -> str:
    """What the judge is shown as the question: the instruction (+ the input, for Self-Instruct)."""
    return f"{q.instruction}\n\n{q.input}" if q.input else q.instruction


def pairwise_request(spec, m: Match, order: str):
    from tacos.llm.types import LLMRequest

    first, second = (m.ours, m.theirs) if order == "ours_first" else (m.theirs, m.ours)
    user = render(read_prompt(spec.prompt), question=m.question, answer_1=first, answer_2=second)
    return LLMRequest(messages=(("system", read_prompt(spec.system_prompt).strip()), ("user", user)),
                      prompt_hash=prompts_hash(spec.system_prompt, spec.prompt), temperature=spec.temperature,
                      max_tokens=spec.max_tokens, seed=spec.seed,
                      label=f"{m.test_set}/{m.question_id}/{m.baseline}/{order}")


def pairwise_requests(spec, matches: list[Match]) -> list:
    """Two requests per match, in ORDERS order."""
    return [pairwise_request(spec, m, o) for m in matches for o in ORDERS]


def pairwise_matches(spec, ours: dict[str, Answers], baselines: dict[str, dict[str, Answers]], data_dir):
    """(matches to judge, rows for questions that lack an answer, (baseline, test set) pairs without answers)."""
    matches, missing, skipped = [], [], []
    for label, answers in baselines.items():
        for bench in spec.test_sets:
            if bench not in answers:
                skipped.append((label, bench))
                continue
            for q in load_test_set(bench, spec.limit, data_dir=data_dir):
                a, b = ours[bench].turns.get(q.question_id), answers[bench].turns.get(q.question_id)
                if not a or not b:
                    who = " and ".join(w for w, x in (("ours", a), (label, b)) if not x)
                    missing.append({"test_set": bench, "baseline": label, "question_id": q.question_id,
                                    "problem": f"no answer from {who}"})
                    continue
                matches.append(Match(bench, label, q.question_id, question_text(q), a[0], b[0]))
    return matches, missing, skipped


def judge_pairwise(ctx, spec, ours: dict[str, Answers], baselines: dict[str, dict[str, Answers]],
                   absent: list[str]) -> tuple[dict, dict]:
    """Judge every match through the run's LLM session, write the pairwise/ files; (counts, stats)."""
    from tacos.plots import win_tie_lose_bar

    matches, missing, skipped = pairwise_matches(spec, ours, baselines, ctx.paths.data_dir)
    for label, bench in skipped:
        log.warning("judge: baseline %s has no answers for %s: skipped", label, bench)
    if missing:
        log.warning("judge: %d question(s) lack an answer and are not judged (see %s/verdicts.jsonl)",
                    len(missing), PAIRWISE_DIR)
    requests = pairwise_requests(spec, matches)
    results = ctx.llm.run(requests, parse_pairwise_scores, desc="judge (pairwise, both orders)")
    calls, verdict_rows, orders = _verdicts(matches, results)
    n_missing: dict[tuple[str, str], int] = {}
    for row in missing:
        n_missing[(row["baseline"], row["test_set"])] = n_missing.get((row["baseline"], row["test_set"]), 0) + 1
        verdict_rows.append({**row, "ours_first": None, "baseline_first": None, "combined": None})

    stats: dict[str, dict[str, dict]] = {}
    for label, answers in baselines.items():
        for bench in spec.test_sets:
            if bench not in answers:
                continue
            seed = [ctx.seed, zlib.crc32(f"{label}/{bench}".encode())]
            stats.setdefault(label, {})[bench] = {
                **pairwise_summary(orders.get((label, bench), []), spec.n_boot, seed),
                "missing": n_missing.get((label, bench), 0)}
    out = ctx.out_dir / PAIRWISE_DIR
    out.mkdir()
    write_jsonl(out / "judgments.jsonl", calls)
    write_jsonl(out / "verdicts.jsonl", verdict_rows)
    model = next(iter(ours.values())).model_id
    write_json_atomic(out / "results.json", {"model": model, "judge_llm": ctx.llm.identity, "results": stats,
                                             "skipped": [list(s) for s in skipped]})
    ctx.add_table("pairwise", STAT_COLUMNS, [[label, bench, *(s[c] for c in STAT_COLUMNS[2:])]
                                             for label, per in stats.items() for bench, s in per.items()])
    for label, per in stats.items():
        png = out / f"win_tie_lose_{safe_file_name(label)}.png"
        win_tie_lose_bar({b: (s["win"], s["tie"], s["lose"]) for b, s in per.items()}, png,
                         title=f"{model} vs {label}: win / tie / lose")
        ctx.add_plot(png)
    stats_all = position_diagnostics([o for per in orders.values() for o in per])
    counts = {"pairwise_calls": len(requests), "pairwise_questions": len(matches),
              "pairwise_invalid_calls": sum(r.status == "invalid" for r in results),
              "pairwise_missing_answers": len(missing), "pairwise_errors": sum(r.status == "error" for r in results),
              "pairwise_baselines": len(baselines), "pairwise_baselines_absent": len(absent)}
    return counts, {"results": stats, "position_bias": stats_all}


def position_diagnostics(orders: list[tuple[str | None, str | None]]) -> dict:
    """Over every question judged in both orders ((ours-first, baseline-first) verdicts from our side): how often the
    two orders agree, and how often the first-presented answer wins a decided judgment."""
    both = [(a, b) for a, b in orders if a is not None and b is not None]
    firsts = [a == "win" for a, _ in both if a != "tie"] + [b == "lose" for _, b in both if b != "tie"]
    return {"consistency": round(sum(a == b for a, b in both) / len(both), 4) if both else None,
            "first_position_win_rate": round(sum(firsts) / len(firsts), 4) if firsts else None,
            "n_questions_both_orders": len(both), "judgment": "text"}


def _verdicts(matches: list[Match], results: list) -> tuple[list[dict], list[dict], dict]:
    """(one row per call, one row per question, (baseline, test set) -> [(ours-first, baseline-first) verdicts])."""
    calls, verdict_rows = [], []
    orders: dict[tuple[str, str], list[tuple[str | None, str | None]]] = {}
    for k, m in enumerate(matches):
        pair = []
        for order, res in zip(ORDERS, results[2 * k: 2 * k + 2]):
            s1, s2 = res.parsed if res.status == "ok" else (None, None)
            ours_s, theirs_s = (s1, s2) if order == "ours_first" else (s2, s1)
            v = verdict(ours_s, theirs_s) if res.status == "ok" else None
            pair.append(v)
            calls.append({"test_set": m.test_set, "baseline": m.baseline, "question_id": m.question_id,
                          "order": order, "score_first": s1, "score_second": s2, "score_ours": ours_s,
                          "score_baseline": theirs_s, "verdict": v, "status": res.status, "raw": res.raw,
                          "cache_key": res.key})
        orders.setdefault((m.baseline, m.test_set), []).append((pair[0], pair[1]))
        verdict_rows.append({"test_set": m.test_set, "baseline": m.baseline, "question_id": m.question_id,
                             "ours_first": pair[0], "baseline_first": pair[1], "combined": combine(*pair),
                             "problem": "" if None not in pair else "invalid judge answer"})
    return calls, verdict_rows, orders


def safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
