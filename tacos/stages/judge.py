"""Stage `judge`: grade our model's answers (from the `infer` stage) with an LLM judge.

judge.kind=pairwise: on each test set, our answer vs each baseline's, every question judged in both orders; per
test set and baseline: win/tie/lose, score (win - lose)/n + 1 with a seeded bootstrap 95% CI, order consistency,
invalid count; a win/tie/lose chart per baseline (one bar per test set).
judge.kind=mt_bench: FastChat llm_judge single-answer grading (its prompts, reference answers for
math/reasoning/coding, "[[rating]]"), written as FastChat's model_judgment/<judge_model_name>_single.jsonl so
`python -m fastchat.llm_judge.show_result` reads it; turn/overall/per-category means only when complete.
judge.kind=all: both. Every call goes through the run's LLM client (cache, retries, budget): a re-run or a larger
`judge.limit` only makes the calls that are not answered yet. Layout and field names: evaluate/README.md.
"""
from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from tacos.config import to_container
from tacos.data.test_sets import (MT_BENCH, TEST_SETS, data_dir, load_mt_bench, load_test_set,
                                  mt_bench_judge_prompts, mt_bench_reference_answers)
from tacos.eval.judging import (NEED_REF_CATS, MTBenchItem, combine, fastchat_single_row, mt_bench_prompt_name,
                                mt_bench_summary, mt_bench_user_prompt, pairwise_summary, parse_mt_bench_rating,
                                parse_pairwise_scores, render, verdict)
from tacos.pipeline import StageError, read_manifest, write_json_atomic
from tacos.records import TestQuestion, dumps, file_sha256, read_jsonl, write_jsonl
from tacos.specs import JudgeSpec
from tacos.stages.common import check_errors, empty_plan, prompts_hash, read_prompt

log = logging.getLogger(__name__)

COMPONENTS = ("judge",)
BENCHES = (*TEST_SETS, MT_BENCH)
ORDERS = ("ours_first", "baseline_first")
PAIRWISE_DIR = "pairwise"
MT_BENCH_DIR = "mt_bench"
JUDGMENT_DIR = "model_judgment"  # FastChat's folder name: data/<bench>/model_judgment/<judge>_single.jsonl
API_ERROR_OUTPUT = "$ERROR$"  # what FastChat writes as the judgment of a call that failed


def requires(cfg) -> list[str]:
    return ["infer"]


def uses_llm(cfg) -> bool:
    return True


def _does(spec, kind: str) -> bool:
    return spec.kind in (kind, "all")


def config_slice(cfg) -> dict:
    """The judge config, the prompt bytes, the baseline answer files and the bundled question files: editing any of
    them re-runs the stage (the unchanged calls still come from the cache)."""
    spec = to_container(cfg.judge)
    out: dict = {"judge": spec, "seed": int(cfg.seed)}
    if spec["kind"] != "mt_bench":
        out["prompt_hash"] = prompts_hash(spec["system_prompt"], spec["prompt"])
        out["test_set_files"] = {t: file_sha256(data_dir() / "test_sets" / f"{t}.jsonl") for t in spec["test_sets"]}
        judge = JudgeSpec(**{k: v for k, v in spec.items() if k != "_target_"})
        out["baselines"] = {}
        for entry in spec["baselines"]:
            files = _baseline_files(entry, spec["test_sets"], judge)
            # A registered name that is missing now is part of the identity: judge again once it exists.
            out["baselines"][entry] = None if files is None else {b: file_sha256(p) for b, p in files.items()}
    if spec["kind"] != "pairwise":
        out["mt_bench_files"] = {name: file_sha256(data_dir() / MT_BENCH / name)
                                 for name in ("question.jsonl", "judge_prompts.jsonl", "reference_answer/gpt-4.jsonl")}
    return out


# -- answers -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answers:
    """One model's FastChat answer file: model id (the file name, as FastChat) and question_id -> turns."""

    model_id: str
    path: Path
    turns: dict[str, list[str]]


def read_answers(path: Path) -> Answers:
    turns: dict[str, list[str]] = {}
    for n, row in enumerate(read_jsonl(path), 1):
        try:
            answer = [str(t) for t in row["choices"][0]["turns"]]
            turns[str(row["question_id"])] = answer
        except (KeyError, IndexError, TypeError):
            raise StageError(f"{path}: line {n} is not a FastChat answer row "
                             f"{{question_id, choices: [{{turns: [...]}}]}}") from None
    return Answers(model_id=path.stem, path=path, turns=turns)


def _our_answer_file(infer_dir: Path, spec: JudgeSpec, bench: str) -> Path | None:
    folder = infer_dir / "model_answer" / bench
    # Ours: judge.model_id, else the fine-tuned model the infer stage names (not the base model it may also answer).
    model_id = spec.model_id or (read_manifest(infer_dir.parent, infer_dir.name) or {}).get("stats", {}).get("model_id")
    if model_id:
        path = folder / f"{model_id}.jsonl"
        return path if path.is_file() else None
    files = sorted(folder.glob("*.jsonl"))
    if len(files) > 1:
        raise StageError(f"{folder} holds answers of several models ({', '.join(f.stem for f in files)}); "
                         f"choose ours with judge.model_id=NAME")
    return files[0] if files else None


def _our_answers(ctx, spec: JudgeSpec, benches: list[str]) -> dict[str, Answers]:
    infer_dir = ctx.input_dir("infer")
    found = {b: p for b in benches if (p := _our_answer_file(infer_dir, spec, b)) is not None}
    missing = [b for b in benches if b not in found]
    if missing:
        which = f"{spec.model_id}.jsonl" if spec.model_id else "*.jsonl"
        raise StageError(f"no answers of our model for {missing} in {infer_dir / 'model_answer'}/<bench>/{which}. "
                         f"Run infer on them, or judge fewer (judge.test_sets=[...], or judge=mt_bench/pairwise).")
    return {b: read_answers(p) for b, p in found.items()}


def _baseline_files(entry: str, benches: list[str], spec: JudgeSpec) -> dict[str, Path] | None:
    """bench -> answer file of one judge.baselines entry: an answer file <...>/<bench>/<model>.jsonl, a run dir
    with infer/, an infer stage folder, a model_answer folder of <bench>/ subfolders, or a bare name registered in
    judge.answers_dir (None when that name is not registered yet)."""
    from tacos.eval import registry

    if spec.answers_dir and registry.is_name(entry):
        folder = Path(spec.answers_dir) / entry
        if not folder.is_dir():
            if spec.missing_baselines == "error":
                have = registry.names(Path(spec.answers_dir).parent, Path(spec.answers_dir).name)
                raise StageError(f"judge.baselines: no answers registered as {entry!r} in {spec.answers_dir} "
                                 f"(registered: {have or 'none'}). Run that experiment with the same model first.")
            return None
        entry = str(folder)
    path = Path(entry).expanduser()
    if path.is_file():
        bench = path.parent.name
        if bench not in BENCHES:
            raise StageError(f"judge.baselines: cannot tell which test set {path} answers: its folder must be named "
                             f"after it (<...>/<bench>/<model>.jsonl, bench in {list(BENCHES)})")
        return {bench: path} if bench in benches else {}
    if not path.is_dir():
        raise StageError(f"judge.baselines: {entry} does not exist (relative paths are read from {Path.cwd()})")
    root = next((r for r in (path / "infer" / "model_answer", path / "model_answer", path)
                 if r.is_dir() and any((r / b).is_dir() for b in BENCHES)), None)
    if root is None:
        raise StageError(f"judge.baselines: no answers under {path}; expected <run_dir>/infer/model_answer/<bench>/"
                         f"*.jsonl or <folder>/<bench>/*.jsonl with bench in {list(BENCHES)}")
    out = {}
    for b in benches:
        files = sorted((root / b).glob("*.jsonl"))
        if len(files) > 1:
            raise StageError(f"judge.baselines: {root / b} holds answers of several models "
                             f"({', '.join(f.stem for f in files)}); list the one file you mean")
        if files:
            out[b] = files[0]
    return out


def _baselines(spec: JudgeSpec) -> tuple[dict[str, dict[str, Answers]], list[str]]:
    """(label (the model id of its answer files) -> bench -> answers, registered names not found)."""
    if not spec.baselines:
        raise StageError("judge.baselines is empty: pairwise judging needs at least one baseline, e.g. "
                         "'judge.baselines=[outputs/runs/.../baseline_run_dir]' (or use judge=mt_bench)")
    out: dict[str, dict[str, Answers]] = {}
    absent: list[str] = []
    for entry in spec.baselines:
        files = _baseline_files(entry, list(spec.test_sets), spec)
        if files is None:
            log.warning("judge: baseline %r has no registered answers in %s yet: skipped (run it, then re-run "
                        "stages=[judge,report] here: only the new comparisons are judged)", entry, spec.answers_dir)
            absent.append(entry)
            continue
        if not files:
            raise StageError(f"judge.baselines: {entry} has answers for none of {list(spec.test_sets)}")
        answers = {b: read_answers(p) for b, p in files.items()}
        label = next(iter(answers.values())).model_id
        if label in out:
            raise StageError(f"judge.baselines: two baselines are both named {label!r} (their answer files' "
                             f"name); rename one file so the results can tell them apart")
        out[label] = answers
    return out, absent


# -- pairwise ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Match:
    test_set: str
    baseline: str
    question_id: str
    question: str
    ours: str
    theirs: str


def _question_text(q: TestQuestion) -> str:
    return f"{q.instruction}\n\n{q.input}" if q.input else q.instruction


def _pairwise_request(spec: JudgeSpec, m: _Match, order: str):
    from tacos.llm.client import LLMRequest

    first, second = (m.ours, m.theirs) if order == "ours_first" else (m.theirs, m.ours)
    user = render(read_prompt(spec.prompt), question=m.question, answer_1=first, answer_2=second)
    return LLMRequest(messages=(("system", read_prompt(spec.system_prompt).strip()), ("user", user)),
                      prompt_hash=prompts_hash(spec.system_prompt, spec.prompt), temperature=spec.temperature,
                      max_tokens=spec.max_tokens, label=f"{m.test_set}/{m.question_id}/{m.baseline}/{order}")


def _pairwise_matches(spec: JudgeSpec, ours: dict[str, Answers], baselines: dict[str, dict[str, Answers]]):
    """(matches to judge, rows for questions that lack an answer, (baseline, test set) pairs without answers)."""
    matches, missing, skipped = [], [], []
    for label, answers in baselines.items():
        for bench in spec.test_sets:
            if bench not in answers:
                skipped.append((label, bench))
                continue
            for q in load_test_set(bench, spec.limit):
                a, b = ours[bench].turns.get(q.question_id), answers[bench].turns.get(q.question_id)
                if not a or not b:
                    who = " and ".join(w for w, x in (("ours", a), (label, b)) if not x)
                    missing.append({"test_set": bench, "baseline": label, "question_id": q.question_id,
                                    "problem": f"no answer from {who}"})
                    continue
                matches.append(_Match(bench, label, q.question_id, _question_text(q), a[0], b[0]))
    return matches, missing, skipped


def _pairwise(ctx, spec: JudgeSpec, baselines: dict[str, dict[str, Answers]], absent: list[str]) -> tuple[dict, dict]:
    from tacos.plots import win_tie_lose_bar

    ours = _our_answers(ctx, spec, list(spec.test_sets))
    matches, missing, skipped = _pairwise_matches(spec, ours, baselines)
    for label, bench in skipped:
        log.warning("judge: baseline %s has no answers for %s: skipped", label, bench)
    if missing:
        log.warning("judge: %d question(s) lack an answer and are not judged (see %s/verdicts.jsonl)",
                    len(missing), PAIRWISE_DIR)
    requests = [_pairwise_request(spec, m, o) for m in matches for o in ORDERS]
    results = ctx.llm.run(requests, parse_pairwise_scores, desc="judge (pairwise, both orders)")
    n_err = check_errors(ctx, results, "judge (pairwise)")

    out = ctx.out_dir / PAIRWISE_DIR
    out.mkdir()
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
    n_missing: dict[tuple[str, str], int] = {}
    for row in missing:
        n_missing[(row["baseline"], row["test_set"])] = n_missing.get((row["baseline"], row["test_set"]), 0) + 1
        verdict_rows.append({**row, "ours_first": None, "baseline_first": None, "combined": None})

    stats: dict[str, dict[str, dict]] = {}
    for label, answers in baselines.items():
        for bench in spec.test_sets:
            if bench not in answers:
                continue
            seed = [int(ctx.cfg.seed), zlib.crc32(f"{label}/{bench}".encode())]
            stats.setdefault(label, {})[bench] = {
                **pairwise_summary(orders.get((label, bench), []), spec.n_boot, seed),
                "missing": n_missing.get((label, bench), 0)}
    write_jsonl(out / "judgments.jsonl", calls)
    write_jsonl(out / "verdicts.jsonl", verdict_rows)
    model = next(iter(ours.values())).model_id
    write_json_atomic(out / "results.json", {"model": model, "judge_llm": ctx.llm.identity, "results": stats,
                                             "skipped": [list(s) for s in skipped]})
    columns = ["baseline", "test_set", "win", "tie", "lose", "n", "score", "ci_low", "ci_high", "consistency",
               "invalid", "missing"]
    ctx.add_table("pairwise", columns, [[label, bench, *(s[c] for c in columns[2:])]
                                        for label, per in stats.items() for bench, s in per.items()])
    for label, per in stats.items():
        png = out / f"win_tie_lose_{_safe(label)}.png"
        win_tie_lose_bar({b: (s["win"], s["tie"], s["lose"]) for b, s in per.items()}, png,
                         title=f"{model} vs {label}: win / tie / lose")
        ctx.add_plot(png)
    n_invalid = sum(r.status == "invalid" for r in results)
    counts = {"pairwise_calls": len(requests), "pairwise_questions": len(matches), "pairwise_invalid_calls": n_invalid,
              "pairwise_missing_answers": len(missing), "pairwise_errors": n_err,
              "pairwise_baselines": len(baselines), "pairwise_baselines_absent": len(absent)}
    return counts, stats


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


# -- MT-Bench ------------------------------------------------------------------------------------------------------
def _mt_bench_plan(spec: JudgeSpec, answers: Answers) -> list[tuple[TestQuestion, int, object, str]]:
    """(question, turn, request or None, problem) for every expected judgment (question x turn)."""
    from tacos.llm.client import LLMRequest

    prompts, refs = mt_bench_judge_prompts(), mt_bench_reference_answers()
    plan = []
    for q in load_mt_bench(spec.limit):
        answer = answers.turns.get(q.question_id)
        for turn in (1, 2):
            if not answer or len(answer) < turn:
                plan.append((q, turn, None, "no answer" if not answer else f"no turn-{turn} answer"))
                continue
            name = mt_bench_prompt_name(q.category, turn)
            ref = refs.get(q.question_id) if q.category in NEED_REF_CATS else None
            if q.category in NEED_REF_CATS and ref is None:
                raise StageError(f"MT-Bench question {q.question_id} ({q.category}) has no GPT-4 reference answer in "
                                 f"{data_dir() / MT_BENCH / 'reference_answer'}; rebuild data/ "
                                 f"(python scripts/build_sample_data.py)")
            prompt = prompts[name]
            user = mt_bench_user_prompt(prompt, q.turns, answer, ref, turn)
            request = LLMRequest(messages=(("system", prompt["system_prompt"]), ("user", user)),
                                 prompt_hash=_sha(dumps(prompt)), temperature=spec.temperature,
                                 max_tokens=spec.mt_bench_max_tokens, label=f"mt_bench/{q.question_id}/turn{turn}")
            plan.append((q, turn, request, ""))
    return plan


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fastchat_qid(qid: str) -> int | str:
    return int(qid) if qid.isdigit() else qid  # FastChat's question.jsonl has integer ids


def _mt_bench(ctx, spec: JudgeSpec) -> tuple[dict, dict]:
    answers = _our_answers(ctx, spec, [MT_BENCH])[MT_BENCH]
    plan = _mt_bench_plan(spec, answers)
    todo = [(q, turn, req) for q, turn, req, _ in plan if req is not None]
    results = ctx.llm.run([req for _, _, req in todo], parse_mt_bench_rating, desc="judge (MT-Bench single)")
    n_err = check_errors(ctx, results, "judge (MT-Bench)")
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
            _fastchat_qid(q.question_id), answers.model_id, spec.judge_model_name,
            mt_bench_prompt_name(q.category, turn), req.messages[1][1],
            res.raw if res.raw is not None else API_ERROR_OUTPUT, score, turn,
            entry["created_at"] if entry else None))
    summary = mt_bench_summary(items)
    if not summary["complete"]:
        log.warning("judge: %s", summary["message"])
    (ctx.out_dir / JUDGMENT_DIR).mkdir()
    write_jsonl(ctx.out_dir / JUDGMENT_DIR / f"{spec.judge_model_name}_single.jsonl", rows)
    out = ctx.out_dir / MT_BENCH_DIR
    out.mkdir()
    stats = {**summary, "model": answers.model_id, "judge_model_name": spec.judge_model_name,
             "n_questions": len(plan) // 2, "limit": spec.limit}
    write_json_atomic(out / "results.json", {**stats, "judge_llm": ctx.llm.identity})
    ctx.add_table("mt_bench", ["category", "score"], [[c, s] for c, s in summary["per_category"].items()]
                  + [["turn1", summary["turn1"]], ["turn2", summary["turn2"]], ["overall", summary["overall"]]])
    png = _radar(summary["per_category"], out / "radar.png",
                 f"MT-Bench: {answers.model_id} "
                 + (f"(overall {summary['overall']:.2f})" if summary["overall"] is not None else "(incomplete)"))
    ctx.add_plot(png)
    counts = {"mt_bench_calls": len(todo), "mt_bench_expected": len(plan),
              "mt_bench_invalid": sum(r.status == "invalid" for r in results), "mt_bench_errors": n_err}
    return counts, stats


def _radar(per_category: dict[str, float | None], path: Path, title: str) -> Path:
    """Per-category MT-Bench means on a polar plot (categories without a complete mean are left out)."""
    import numpy as np
    from matplotlib.figure import Figure

    values = {c: v for c, v in per_category.items() if v is not None}
    fig = Figure(figsize=(5.5, 5.5), layout="constrained")
    ax = fig.add_subplot(projection="polar")
    ax.set_title(title)
    if values:
        angles = np.linspace(0, 2 * np.pi, len(values), endpoint=False).tolist()
        ax.plot(angles + angles[:1], list(values.values()) + [next(iter(values.values()))], color="tab:blue")
        ax.fill(angles, list(values.values()), color="tab:blue", alpha=0.25)
        ax.set_xticks(angles, list(values))
    else:
        ax.text(0.5, 0.5, "no complete category", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_ylim(0, 10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    return path


# -- stage entry points --------------------------------------------------------------------------------------------
def run(ctx) -> dict:
    spec: JudgeSpec = ctx.component("judge")
    counts: dict = {}
    stats: dict = {"judge_llm": ctx.llm.identity, "judge_model_name": spec.judge_model_name}
    if _does(spec, "pairwise"):
        baselines, absent = _baselines(spec)
        stats["absent_baselines"] = absent
        if baselines:
            c, stats["pairwise"] = _pairwise(ctx, spec, baselines, absent)
            counts.update(c)
        elif spec.kind == "all":
            log.warning("judge: none of the baselines %s is registered yet: pairwise judging skipped, MT-Bench only",
                        absent)
        else:
            raise StageError(f"judge: none of the baselines {absent} has registered answers in {spec.answers_dir}; "
                             f"run those experiments with the same model first (or use judge=mt_bench)")
    if _does(spec, "mt_bench"):
        c, s = _mt_bench(ctx, spec)
        counts.update(c)
        stats["mt_bench"] = s
    return {"counts": counts, "stats": stats}


def plan(ctx) -> dict:
    """Exact when the infer stage's answers and every baseline's are there; otherwise every question is assumed
    answered by placeholders (call counts exact, token counts a lower bound)."""
    spec: JudgeSpec = ctx.component("judge")
    infer_dir = ctx.run_dir / "infer"
    answered = (infer_dir / "manifest.json").is_file()
    exact = answered
    requests = []
    if _does(spec, "pairwise"):
        benches = list(spec.test_sets)
        baselines, absent = _baselines(spec)
        for name in absent:
            # Forecast as if registered: `base` is answered by this run's infer stage, other names by the runs a
            # sweep (multirun.sh) puts before this one.
            baselines[name] = {b: _placeholder(load_test_set(b, spec.limit), name) for b in benches}
            exact = False
        if baselines:
            ours = _our_answers(ctx, spec, benches) if answered else {b: _placeholder(load_test_set(b, spec.limit))
                                                                      for b in benches}
            matches = _pairwise_matches(spec, ours, baselines)[0]
            requests += [_pairwise_request(spec, m, o) for m in matches for o in ORDERS]
    if _does(spec, "mt_bench"):
        answers = (_our_answers(ctx, spec, [MT_BENCH])[MT_BENCH] if answered
                   else _placeholder(load_mt_bench(spec.limit)))
        requests += [req for _, _, req, _ in _mt_bench_plan(spec, answers) if req is not None]
    if not requests:
        return empty_plan()
    return {**ctx.llm.forecast(requests), "exact": exact}


def _placeholder(questions: list[TestQuestion], who: str = "ours") -> Answers:
    # Distinct per model: identical placeholder pairs would look like one cached call to the forecast.
    return Answers(model_id=f"(not answered yet: {who})", path=Path("-"),
                   turns={q.question_id: [f"({who} answer)", f"({who} answer)"] for q in questions})
