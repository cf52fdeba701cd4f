"""MTBenchBenchmark: MT-Bench single-answer grading as FastChat llm_judge does it, by its rating judge
(tacos.judges.fastchat.FastChatSingleJudge: FastChat's prompts, reference answers and "[[rating]]" rule).

80 questions x 2 turns; the judgment file is FastChat's model_judgment/<judge name>_single.jsonl (at the top of the
stage folder, where `python -m fastchat.llm_judge.show_result --judge-model <judge name>` finds it in FastChat's own
layout). Turn, overall and per-category means are reported only when complete (`mt_bench_summary`). Mapping to
FastChat: evaluate/README.md.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tacos.benchmarks.base import (BenchmarkResult, BenchmarkRun, Chart, JsonDocument, JsonLines, ReportRow, cell,
                                   table)
from tacos.data.benchmark_sets import MT_BENCH, load_mt_bench, mt_bench_file, mt_bench_reference_answers
from tacos.answers.answer_files import Answers, our_answers, placeholder_answers
from tacos.answers.jobs import QuestionToAnswer
from tacos.judges.fastchat import NEED_REF_CATS, SingleAnswer
from tacos.plots import mt_bench_radar
from tacos.records import TestQuestion, file_sha256

log = logging.getLogger(__name__)

FOLDER = "mt_bench"
JUDGMENT_DIR = "model_judgment"  # FastChat's folder name: data/<bench>/model_judgment/<judge>_single.jsonl
API_ERROR_OUTPUT = "$ERROR$"  # what FastChat writes as the judgment of a call that failed
DATA_FILES = ("question.jsonl", "judge_prompts.jsonl", "reference_answer/gpt-4.jsonl")
# The order FastChat's MT-Bench leaderboard and radar plots use.
MT_BENCH_CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")


@dataclass(frozen=True)
class MTBenchItem:
    """One expected judgment (question x turn); score None when it is not valid, `problem` says why."""

    question_id: str
    category: str
    turn: int
    score: float | None
    problem: str = ""  # e.g. "no answer", "invalid rating"


def mt_bench_summary(items: Sequence[MTBenchItem], max_listed: int = 10) -> dict:
    """Turn-1, turn-2 and overall means and per-category means, each reported only when every judgment it
    averages is valid (a mean over a subset is not an MT-Bench score: method_spec §14.2, the 80/160 file)."""
    def mean_if_complete(group: list[MTBenchItem]) -> float | None:
        if not group or any(i.score is None for i in group):
            return None
        return round(float(sum(i.score for i in group) / len(group)), 6)

    by_cat: dict[str, list[MTBenchItem]] = defaultdict(list)
    for i in items:
        by_cat[i.category].append(i)
    order = [c for c in MT_BENCH_CATEGORIES if c in by_cat] + sorted(set(by_cat) - set(MT_BENCH_CATEGORIES))
    bad = [i for i in items if i.score is None]
    n_valid = len(items) - len(bad)
    complete = bool(items) and not bad
    if complete:
        message = f"complete: {n_valid}/{len(items)} judgments valid"
    elif not items:
        message = "no MT-Bench judgment was expected (no questions)"
    else:
        listed = ", ".join(f"q{i.question_id} turn {i.turn} ({i.problem or 'invalid'})" for i in bad[:max_listed])
        more = f" and {len(bad) - max_listed} more" if len(bad) > max_listed else ""
        message = (f"overall MT-Bench score withheld: only {n_valid}/{len(items)} judgments are valid. "
                   f"Not valid: {listed}{more}. Re-run the judge (answered calls are cached; add "
                   f"client.retry_invalid=true to re-ask invalid ones) or complete the answers with infer.")
    return {"turn1": mean_if_complete([i for i in items if i.turn == 1]),
            "turn2": mean_if_complete([i for i in items if i.turn == 2]),
            "overall": mean_if_complete(list(items)),
            "n_valid": n_valid, "n_expected": len(items), "complete": complete,
            "per_category": {c: mean_if_complete(by_cat[c]) for c in order},
            "message": message}


def fastchat_single_row(question_id: int | str, model: str, judge_model_name: str, prompt_name: str,
                        user_prompt: str, judgment: str, score: float | None, turn: int, tstamp: float) -> dict:
    """One line of FastChat's `model_judgment/<judge>_single.jsonl`; an invalid rating is FastChat's -1
    (show_result drops those rows)."""
    return {"question_id": question_id, "model": model, "judge": [judge_model_name, prompt_name],
            "user_prompt": user_prompt, "judgment": judgment, "score": -1 if score is None else score,
            "turn": turn, "tstamp": tstamp}


def judgment_file_name(judge_name: str) -> str:
    """FastChat's judgment file of one judge (single-answer grading)."""
    return f"{judge_name}_single.jsonl"


def fastchat_question_id(qid: str) -> int | str:
    return int(qid) if qid.isdigit() else qid  # FastChat's question.jsonl has integer ids


# FastChat llm_judge.common.temperature_config: the sampling temperature per question category (0: greedy).
FASTCHAT_TEMPERATURES = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
                         "reasoning": 0.0, "stem": 0.1, "humanities": 0.1, "arena-hard-200": 0.0}


@dataclass
class MTBenchBenchmark:
    name: str = "mt_bench"
    judge: Any = None  # the rating judge: tacos.judges.fastchat.FastChatSingleJudge
    # How our model answers (FastChat gen_model_answer): temperature per category, 1024 new tokens, two turns.
    temperatures: dict[str, float] = field(default_factory=lambda: dict(FASTCHAT_TEMPERATURES))
    default_temperature: float = 0.7  # a category not in `temperatures`
    max_new_tokens: int = 1024

    uses_pair_judge = False

    def validate(self) -> None:
        if self.judge is None or not hasattr(self.judge, "grade"):
            raise ValueError(f"{self.name}.judge must be a FastChat single-answer grader (_target_: "
                             f"tacos.judges.fastchat.FastChatSingleJudge), not {self.judge!r}")
        bad = {c: t for c, t in {**self.temperatures, "default": self.default_temperature}.items() if t < 0}
        if bad or self.max_new_tokens < 1:
            raise ValueError(f"{self.name}: temperatures must be >= 0 (got {bad}) and max_new_tokens >= 1 "
                             f"(got {self.max_new_tokens})")
        self.judge.validate()

    def identity(self, data_dir: Path) -> dict:
        return {"mt_bench_files": {n: file_sha256(mt_bench_file(n, data_dir)) for n in DATA_FILES},
                "judge": self.judge.identity(None)}

    def answer_jobs(self, data_dir: Path, limit: int | None) -> list[QuestionToAnswer]:
        """The 80 questions, two turns each (the second asked after our model's first answer), ids written as ints."""
        return [QuestionToAnswer(MT_BENCH, q.question_id, tuple(q.turns), max_new_tokens=self.max_new_tokens,
                                 temperature=self.temperatures.get(q.category, self.default_temperature),
                                 id_as_int=True) for q in load_mt_bench(limit, data_dir)]

    def summary(self, stats: dict) -> list[ReportRow]:
        """Turn 1, turn 2 and overall (the report's MT-Bench columns), joined to every row of the run."""
        mt = stats.get(FOLDER) or {}
        t1, t2, overall = mt.get("turn1"), mt.get("turn2"), mt.get("overall")
        text = f"{cell(overall)} ({cell(t1)}/{cell(t2)})" if overall is not None or t1 is not None else "–"
        return [ReportRow("", {f"{self.name}_turn1": t1, f"{self.name}_turn2": t2, self.name: overall},
                          {"MT-Bench (T1/T2)": text})]

    def plan(self, answers: Answers, run: BenchmarkRun) -> list[tuple[TestQuestion, int, SingleAnswer | None, str]]:
        """(question, turn, what to grade or None, problem) for every expected judgment (question x turn)."""
        refs = mt_bench_reference_answers(run.data_dir)
        plan = []
        for q in load_mt_bench(run.limit, run.data_dir):
            answer = answers.turns.get(q.question_id)
            ref = refs.get(q.question_id) if q.category in NEED_REF_CATS else None
            if q.category in NEED_REF_CATS and ref is None:
                raise ValueError(f"MT-Bench question {q.question_id} ({q.category}) has no GPT-4 reference answer in "
                                 f"{mt_bench_file('reference_answer', run.data_dir)}; rebuild data/ "
                                 f"(python scripts/build_sample_data.py)")
            for turn in (1, 2):
                if not answer or len(answer) < turn:
                    plan.append((q, turn, None, "no answer" if not answer else f"no turn-{turn} answer"))
                    continue
                item = SingleAnswer(f"mt_bench/{q.question_id}/turn{turn}", q.category, turn, tuple(q.turns),
                                    tuple(answer), None if ref is None else tuple(ref))
                plan.append((q, turn, item, ""))
        return plan

    def _answers(self, run: BenchmarkRun) -> Answers:
        if run.answered:
            return our_answers(run.infer_dir, run.model_id, [MT_BENCH])[MT_BENCH]
        return placeholder_answers(load_mt_bench(run.limit, run.data_dir))

    def requests(self, run: BenchmarkRun) -> tuple[list, bool]:
        items = [item for _, _, item, _ in self.plan(self._answers(run), run) if item is not None]
        return self.judge.answer_requests(items, run.jctx), run.answered

    def run(self, run: BenchmarkRun) -> BenchmarkResult:
        answers = self._answers(run)
        plan = self.plan(answers, run)
        todo = [item for _, _, item, _ in plan if item is not None]
        ratings = {r.id: r for r in self.judge.grade(todo, run.jctx)}
        rows, items = [], []
        for q, turn, item, problem in plan:
            if item is None:
                items.append(MTBenchItem(q.question_id, q.category, turn, None, problem))
                continue
            r = ratings[item.id]
            items.append(MTBenchItem(q.question_id, q.category, turn, r.value, r.reason))
            raw = r.detail["raw"]
            rows.append(fastchat_single_row(fastchat_question_id(q.question_id), answers.model_id, run.judge_name,
                                            r.detail["prompt_name"], r.detail["user_prompt"],
                                            raw if raw is not None else API_ERROR_OUTPUT, r.value, turn,
                                            r.detail["tstamp"]))
        summary = mt_bench_summary(items)
        if not summary["complete"]:
            log.warning("judge: %s", summary["message"])
        stats = {**summary, "model": answers.model_id, "judge_model_name": run.judge_name,
                 "n_questions": len(plan) // 2, "limit": run.limit}
        overall = f"(overall {summary['overall']:.2f})" if summary["overall"] is not None else "(incomplete)"
        statuses = [r.detail["status"] for r in ratings.values()]
        scores = [[c, s] for c, s in summary["per_category"].items()] + \
            [["turn1", summary["turn1"]], ["turn2", summary["turn2"]], ["overall", summary["overall"]]]
        return BenchmarkResult(
            counts={"mt_bench_calls": len(todo), "mt_bench_expected": len(plan),
                    "mt_bench_invalid": statuses.count("invalid"), "mt_bench_errors": statuses.count("error")},
            stats={"mt_bench": stats},
            files={f"{JUDGMENT_DIR}/{judgment_file_name(run.judge_name)}": JsonLines(rows),
                   f"{FOLDER}/results.json": JsonDocument({**stats, "judge_llm": run.llm_identity})},
            tables={"mt_bench": table(["category", "score"], scores)},
            charts=[Chart(f"{FOLDER}/radar.png", mt_bench_radar, summary["per_category"],
                          f"MT-Bench: {answers.model_id} {overall}")],
            ratings=list(ratings.values()))
