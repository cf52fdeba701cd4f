"""MT-Bench single-answer grading as FastChat llm_judge does it (judge.kind=mt_bench).

Its prompts (single-v1 / single-math-v1 with GPT-4 reference answers for math, reasoning and coding, multi-turn
variants for turn 2), its "[[rating]]" rule and its judgment file model_judgment/<judge name>_single.jsonl, which
`python -m fastchat.llm_judge.show_result --judge-model <judge name>` reads. Turn, overall and per-category means are
reported only when complete (tacos.eval.judging.mt_bench_summary). Mapping to FastChat: evaluate/README.md.
"""
from __future__ import annotations

import hashlib
import logging

from tacos.data.benchmark_sets import load_mt_bench, mt_bench_file, mt_bench_judge_prompts, mt_bench_reference_answers
from tacos.eval.answer_files import Answers
from tacos.eval.judging import (NEED_REF_CATS, MTBenchItem, fastchat_single_row, mt_bench_prompt_name,
                                mt_bench_summary, mt_bench_user_prompt, parse_mt_bench_rating)
from tacos.records import TestQuestion, dumps, write_jsonl
from tacos.stage import StageError, write_json_atomic

log = logging.getLogger(__name__)

MT_BENCH_DIR = "mt_bench"
JUDGMENT_DIR = "model_judgment"  # FastChat's folder name: data/<bench>/model_judgment/<judge>_single.jsonl
API_ERROR_OUTPUT = "$ERROR$"  # what FastChat writes as the judgment of a call that failed


def judgment_file_name(judge_name: str) -> str:
    """FastChat's judgment file of one judge (single-answer grading)."""
    return f"{judge_name}_single.jsonl"


def mt_bench_plan(spec, answers: Answers, data_dir) -> list[tuple[TestQuestion, int, object, str]]:
    """(question, turn, request or None, problem) for every expected judgment (question x turn)."""
    from tacos.llm.types import LLMRequest

    prompts, refs = mt_bench_judge_prompts(data_dir), mt_bench_reference_answers(data_dir)
    plan = []
    for q in load_mt_bench(spec.limit, data_dir):
        answer = answers.turns.get(q.question_id)
        for turn in (1, 2):
            if not answer or len(answer) < turn:
                plan.append((q, turn, None, "no answer" if not answer else f"no turn-{turn} answer"))
                continue
            name = mt_bench_prompt_name(q.category, turn)
            ref = refs.get(q.question_id) if q.category in NEED_REF_CATS else None
            if q.category in NEED_REF_CATS and ref is None:
                raise StageError(f"MT-Bench question {q.question_id} ({q.category}) has no GPT-4 reference answer in "
                                 f"{mt_bench_file('reference_answer', data_dir)}; rebuild data/ "
                                 f"(python scripts/build_sample_data.py)")
            prompt = prompts[name]
            user = mt_bench_user_prompt(prompt, q.turns, answer, ref, turn)
            request = LLMRequest(messages=(("system", prompt["system_prompt"]), ("user", user)),
                                 prompt_hash=hashlib.sha256(dumps(prompt).encode("utf-8")).hexdigest(),
                                 temperature=spec.temperature, max_tokens=spec.mt_bench_max_tokens,
                                 seed=spec.seed, label=f"mt_bench/{q.question_id}/turn{turn}")
            plan.append((q, turn, request, ""))
    return plan


def mt_bench_requests(spec, answers: Answers, data_dir) -> list:
    return [req for _, _, req, _ in mt_bench_plan(spec, answers, data_dir) if req is not None]


def fastchat_question_id(qid: str) -> int | str:
    return int(qid) if qid.isdigit() else qid  # FastChat's question.jsonl has integer ids


def judge_mt_bench(ctx, spec, answers: Answers, judge_name: str) -> tuple[dict, dict]:
    """Grade our MT-Bench answers through the run's LLM session, write FastChat's judgment file (named after
    `judge_name`) and mt_bench/results.json + radar.png; (counts, stats)."""
    from tacos.plots import mt_bench_radar

    plan = mt_bench_plan(spec, answers, ctx.paths.data_dir)
    todo = [(q, turn, req) for q, turn, req, _ in plan if req is not None]
    results = ctx.llm.run([req for _, _, req in todo], parse_mt_bench_rating, desc="judge (MT-Bench single)")
    by_item = {(q.question_id, turn): res for (q, turn, _), res in zip(todo, results)}

    rows, items = [], []
    for q, turn, req, problem in plan:
        res = by_item.get((q.question_id, turn))
        if res is None:
            items.append(MTBenchItem(q.question_id, q.category, turn, None, problem))
            continue
        score = float(res.parsed) if res.status == "ok" else None
        items.append(MTBenchItem(q.question_id, q.category, turn, score,
                                 "" if score is not None else f"{res.status} judge answer"))
        entry = ctx.llm.cache.get(res.key)  # the judgment's own time: stable when a re-run reads the cache
        rows.append(fastchat_single_row(
            fastchat_question_id(q.question_id), answers.model_id, judge_name,
            mt_bench_prompt_name(q.category, turn), req.messages[1][1],
            res.raw if res.raw is not None else API_ERROR_OUTPUT, score, turn,
            entry["created_at"] if entry else None))
    summary = mt_bench_summary(items)
    if not summary["complete"]:
        log.warning("judge: %s", summary["message"])
    (ctx.out_dir / JUDGMENT_DIR).mkdir()
    write_jsonl(ctx.out_dir / JUDGMENT_DIR / judgment_file_name(judge_name), rows)
    out = ctx.out_dir / MT_BENCH_DIR
    out.mkdir()
    stats = {**summary, "model": answers.model_id, "judge_model_name": judge_name,
             "n_questions": len(plan) // 2, "limit": spec.limit}
    write_json_atomic(out / "results.json", {**stats, "judge_llm": ctx.llm.identity})
    ctx.add_table("mt_bench", ["category", "score"], [[c, s] for c, s in summary["per_category"].items()]
                  + [["turn1", summary["turn1"]], ["turn2", summary["turn2"]], ["overall", summary["overall"]]])
    overall = f"(overall {summary['overall']:.2f})" if summary["overall"] is not None else "(incomplete)"
    ctx.add_plot(mt_bench_radar(summary["per_category"], out / "radar.png", f"MT-Bench: {answers.model_id} {overall}"))
    counts = {"mt_bench_calls": len(todo), "mt_bench_expected": len(plan),
              "mt_bench_invalid": sum(r.status == "invalid" for r in results),
              "mt_bench_errors": sum(r.status == "error" for r in results)}
    return counts, stats

