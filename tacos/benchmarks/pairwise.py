"""PairwiseBenchmark: our answers vs each baseline's on the five test sets, judged by the judge config's pair judge
in both orders (our answer as Assistant 1, then the baseline's).

Per test set and baseline: win/tie/lose, score (win - lose)/n + 1 with a seeded bootstrap 95% CI, order consistency,
invalid and missing counts (tacos.benchmarks.stats). Files: pairwise/{judgments,verdicts}.jsonl, results.json and one
win/tie/lose chart per baseline (evaluate/README.md). Not to be confused with tacos.strategies.contrastive (contrastive
data scoring).
"""
from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tacos.benchmarks.base import (BenchmarkResult, BenchmarkRun, Chart, JsonDocument, JsonLines, ReportRow, cell,
                                   table)
from tacos.benchmarks.stats import outcome_word, pairwise_summary
from tacos.data.benchmark_sets import TEST_SETS, load_test_set, test_set_file
from tacos.answers.answer_files import Answers, our_answers, placeholder_answers
from tacos.answers.jobs import QuestionToAnswer
from tacos.benchmarks.baselines import KEY, baseline_fingerprints, load_baselines
from tacos.judges.base import PairVerdict
from tacos.plots import win_tie_lose_bar
from tacos.records import Record, TestQuestion, file_sha256

log = logging.getLogger(__name__)

ORDERS = ("ours_first", "baseline_first")
FOLDER = "pairwise"
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

    def records(self) -> tuple[Record, Record]:
        """(ours, theirs) as the pair judge reads them: the question as the instruction of both."""
        key = f"{self.test_set}/{self.question_id}"
        return (Record(f"{key}/ours", 0, self.question, "", self.ours),
                Record(f"{key}/{self.baseline}", 0, self.question, "", self.theirs))


def question_text(q: TestQuestion) -> str:
    """What the judge is shown as the question: the instruction (+ the input, for Self-Instruct)."""
    return f"{q.instruction}\n\n{q.input}" if q.input else q.instruction


@dataclass
class PairwiseBenchmark:
    name: str = "pairwise"
    test_sets: list[str] = field(default_factory=lambda: list(TEST_SETS))
    # Baseline answers: FastChat answer files, folders of <bench>/<model_id>.jsonl, or run dirs with infer/, or bare
    # names registered in answers_dir (the infer stage registers every run's answers there).
    baselines: list[str] = field(default_factory=list)
    answers_dir: str | None = None
    missing_baselines: str = "skip"  # a bare name not registered yet: skip (logged, listed in the manifest) | error
    n_boot: int = 1000  # bootstrap resamples for the score CI (seeded by the run seed, the baseline and the test set)

    uses_pair_judge = True

    def validate(self) -> None:
        unknown = [t for t in self.test_sets if t not in TEST_SETS]
        if unknown:
            raise ValueError(f"{self.name}.test_sets: unknown {unknown}; valid: {list(TEST_SETS)}")
        if not self.test_sets:
            raise ValueError(f"{self.name}.test_sets is empty: name at least one of " + ", ".join(TEST_SETS))
        if self.missing_baselines not in ("skip", "error"):
            raise ValueError(f"{self.name}.missing_baselines must be skip or error, not {self.missing_baselines!r}")
        if self.n_boot < 1:
            raise ValueError(f"{self.name}.n_boot must be >= 1, got {self.n_boot}")

    def identity(self, data_dir: Path) -> dict:
        """The test set files and every baseline's answer files (a registered name missing now is None, so the
        stage judges again once it exists)."""
        return {"test_set_files": {t: file_sha256(test_set_file(t, data_dir)) for t in self.test_sets},
                "baselines": baseline_fingerprints(self)}

    def answer_jobs(self, data_dir: Path, limit: int | None) -> list[QuestionToAnswer]:
        """Each test set's questions, single-turn (instruction + input), sampled with infer's defaults."""
        return [QuestionToAnswer(t, q.question_id, (q.instruction,), input=q.input) for t in self.test_sets
                for q in load_test_set(t, limit, data_dir)]

    def matches(self, ours: dict[str, Answers], baselines: dict[str, dict[str, Answers]], run: BenchmarkRun):
        """(matches to judge, rows for questions that lack an answer, (baseline, test set) pairs without answers)."""
        matches, missing, skipped = [], [], []
        for label, answers in baselines.items():
            for bench in self.test_sets:
                if bench not in answers:
                    skipped.append((label, bench))
                    continue
                for q in load_test_set(bench, run.limit, data_dir=run.data_dir):
                    a, b = ours[bench].turns.get(q.question_id), answers[bench].turns.get(q.question_id)
                    if not a or not b:
                        who = " and ".join(w for w, x in (("ours", a), (label, b)) if not x)
                        missing.append({"test_set": bench, "baseline": label, "question_id": q.question_id,
                                        "problem": f"no answer from {who}"})
                        continue
                    matches.append(Match(bench, label, q.question_id, question_text(q), a[0], b[0]))
        return matches, missing, skipped

    def requests(self, run: BenchmarkRun) -> tuple[list, bool]:
        """Exact when our answers and every baseline's are there; a baseline not registered yet is forecast as if it
        were (`base` is answered by this run's infer stage, other names by the runs a sweep puts before this one)."""
        if not self.baselines:
            return [], run.answered
        baselines, absent = load_baselines(self)
        for name in absent:
            baselines[name] = {b: placeholder_answers(load_test_set(b, run.limit, run.data_dir), name)
                               for b in self.test_sets}
        if not baselines:
            return [], run.answered
        ours = (our_answers(run.infer_dir, run.model_id, list(self.test_sets)) if run.answered
                else {b: placeholder_answers(load_test_set(b, run.limit, run.data_dir)) for b in self.test_sets})
        matches = self.matches(ours, baselines, run)[0]
        return run.pair_judge.requests([m.records() for m in matches], run.jctx), run.answered and not absent

    def summary(self, stats: dict) -> list[ReportRow]:
        """One row per baseline: win / tie / lose and score on each test set."""
        return _summary(list(self.test_sets), stats.get(FOLDER) or {})

    def run(self, run: BenchmarkRun) -> BenchmarkResult:
        if not self.baselines:  # e.g. a baseline run: it answers the test sets for the runs that judge against it
            return BenchmarkResult(skipped=f"no baselines named: set {KEY}=[RUN_DIR_OR_NAME,...] (or "
                                           f"benchmarks=mt_bench)")
        baselines, absent = load_baselines(self)
        if not baselines:
            return BenchmarkResult(stats={"absent_baselines": absent}, skipped=(
                f"none of the baselines {absent} has registered answers in {self.answers_dir}; run those experiments "
                f"with the same model first (or benchmarks=mt_bench)"))
        ours = our_answers(run.infer_dir, run.model_id, list(self.test_sets))
        matches, missing, skipped = self.matches(ours, baselines, run)
        for label, bench in skipped:
            log.warning("judge: baseline %s has no answers for %s: skipped", label, bench)
        if missing:
            log.warning("judge: %d question(s) lack an answer and are not judged (see %s/verdicts.jsonl)",
                        len(missing), FOLDER)
        verdicts = run.pair_judge.judge_pairs([m.records() for m in matches], run.jctx)
        calls, verdict_rows, per_set = _rows(matches, verdicts)
        n_missing: dict[tuple[str, str], int] = {}
        for row in missing:
            n_missing[(row["baseline"], row["test_set"])] = n_missing.get((row["baseline"], row["test_set"]), 0) + 1
            verdict_rows.append({**row, "ours_first": None, "baseline_first": None, "combined": None})
        stats: dict[str, dict[str, dict]] = {}
        for label, answers in baselines.items():
            for bench in (b for b in self.test_sets if b in answers):
                seed = [run.seed, zlib.crc32(f"{label}/{bench}".encode())]
                stats.setdefault(label, {})[bench] = {**pairwise_summary(per_set.get((label, bench), []), self.n_boot,
                                                                         seed),
                                                      "missing": n_missing.get((label, bench), 0)}
        model = next(iter(ours.values())).model_id
        charts = [Chart(f"{FOLDER}/win_tie_lose_{safe_file_name(label)}.png", win_tie_lose_bar,
                        {b: (s["win"], s["tie"], s["lose"]) for b, s in per.items()},
                        f"{model} vs {label}: win / tie / lose") for label, per in stats.items()]
        rows = [[label, bench, *(s[c] for c in STAT_COLUMNS[2:])] for label, per in stats.items()
                for bench, s in per.items()]
        statuses = [o.status for v in verdicts for o in v.orders]
        counts = {"pairwise_calls": 2 * len(matches), "pairwise_questions": len(matches),
                  "pairwise_invalid_calls": statuses.count("invalid"), "pairwise_missing_answers": len(missing),
                  "pairwise_errors": statuses.count("error"), "pairwise_baselines": len(baselines),
                  "pairwise_baselines_absent": len(absent)}
        return BenchmarkResult(
            counts=counts, stats={"pairwise": stats, "absent_baselines": absent},
            files={f"{FOLDER}/judgments.jsonl": JsonLines(calls), f"{FOLDER}/verdicts.jsonl": JsonLines(verdict_rows),
                   f"{FOLDER}/results.json": JsonDocument({"model": model, "judge_llm": run.llm_identity,
                                                           "results": stats, "skipped": [list(s) for s in skipped]})},
            tables={"pairwise": table(STAT_COLUMNS, rows)}, charts=charts, pair_verdicts=verdicts)


WTL = ("win", "tie", "lose", "score")


def _summary(test_sets: list[str], per_baseline: dict) -> list[ReportRow]:
    rows = []
    for baseline, per_set in sorted(per_baseline.items()):
        sets = {t: per_set.get(t) or {} for t in test_sets}
        rows.append(ReportRow(baseline, {f"{t}_{k}": s.get(k) for t, s in sets.items() for k in WTL},
                              {f"{t} W/T/L (score)": "–" if s.get("win") is None else
                               f"{s['win']}/{s['tie']}/{s['lose']} ({cell(s.get('score'))})" for t, s in sets.items()}))
    return rows


def _rows(matches: list[Match], verdicts: list[PairVerdict]) -> tuple[list[dict], list[dict], dict]:
    """(one row per call, one row per question, (baseline, test set) -> [(ours-first, baseline-first, combined)])."""
    calls, verdict_rows = [], []
    per_set: dict[tuple[str, str], list[tuple[str | None, str | None, str | None]]] = {}
    for m, v in zip(matches, verdicts):
        sides = v.order_verdicts()  # from our side (v.first is ours), as the judge read each order
        for order, o, side in zip(ORDERS, v.orders, sides):
            s1, s2 = o.score_first, o.score_second
            ours_s, theirs_s = (s1, s2) if order == "ours_first" else (s2, s1)
            calls.append({"test_set": m.test_set, "baseline": m.baseline, "question_id": m.question_id,
                          "order": order, "score_first": s1, "score_second": s2, "score_ours": ours_s,
                          "score_baseline": theirs_s, "verdict": side, "status": o.status, "raw": o.raw,
                          "cache_key": o.cache_key})
        combined = outcome_word(v.p_first)
        per_set.setdefault((m.baseline, m.test_set), []).append((sides[0], sides[1], combined))
        verdict_rows.append({"test_set": m.test_set, "baseline": m.baseline, "question_id": m.question_id,
                             "ours_first": sides[0], "baseline_first": sides[1], "combined": combined,
                             "problem": "" if combined is not None else "invalid judge answer"})
    return calls, verdict_rows, per_set


def safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
