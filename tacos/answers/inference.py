"""What the infer stage does: pick the model (the train stage's checkpoint, `infer.model_path`, or the `llm`
endpoint), answer every job not yet in the resumable work file through `infer.generator` (tacos.answers.generators),
write FastChat's answer files, optionally answer again with the base model; and the forecast of LLM calls.

Answers are appended to <run_dir>/.infer_work/<model key>/<bench>.jsonl as they come, outside the stage's partial
folder, so a killed run resumes by question id; the model_answer files are written at the end (infer/README.md).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from tacos.config import config_hash
from tacos.answers.jobs import (InferSpec, WorkFile, answer_file, checkpoint_dir, checkpoint_fingerprint,
                                fastchat_row, make_jobs)
from tacos.records import file_sha256, write_jsonl
from tacos.stage import StageError, StageResult, empty_plan

WORK_DIR = ".infer_work"
ANSWER_TABLE_COLUMNS = ["model_id", "bench", "questions", "generated", "resumed", "mean_chars", "empty_turns"]


def infer_inputs(spec: InferSpec) -> dict:
    """What besides the config determines the answers: an explicit checkpoint's content (a train-stage checkpoint
    is identified by the train manifest) and the chat template file's bytes."""
    out = {}
    if spec.uses_checkpoint_path():
        out["checkpoint"] = checkpoint_fingerprint(spec.model_path)
    if spec.chat_template is not None:
        out["chat_template_sha256"] = file_sha256(spec.chat_template)
    return out


def base_model_id(model_name: str) -> str:
    """The answer files' name of the model before fine-tuning."""
    return f"{model_name}-base"


def _train_stats(train_dir: Path) -> dict:
    return json.loads((train_dir / "manifest.json").read_text(encoding="utf-8")).get("stats", {})


def train_checkpoint(train_dir: Path) -> Path:
    """The final model folder the train stage's manifest names (stats.model_path, written by tacos.sft)."""
    stats = _train_stats(train_dir)
    named = stats.get("model_path") or stats.get("checkpoint")
    if not named:
        raise StageError(f"{train_dir / 'manifest.json'} names no model (stats.model_path); "
                         f"set infer.model_path=FOLDER")
    p = Path(named)
    return checkpoint_dir(p if p.is_absolute() or not (train_dir / p).exists() else train_dir / p)


def resolve_model(ctx, spec: InferSpec) -> tuple[Path | None, str]:
    """(checkpoint folder or None for an endpoint, the key of the work folder: what the answers depend on besides
    the job itself)."""
    generator = spec.generator
    if not generator.needs_checkpoint:
        return None, config_hash({**generator.identity(), "llm": ctx.llm.identity})[:16]
    path = checkpoint_dir(spec.model_path) if spec.model_path is not None else train_checkpoint(ctx.input_dir("train"))
    template = file_sha256(spec.chat_template) if spec.chat_template else None
    key = config_hash({**generator.identity(), "checkpoint": checkpoint_fingerprint(path), "chat_template": template})
    return path, key[:16]


def generate(ctx, spec: InferSpec, jobs: dict, path: Path | None, key: str, chat_template: str | None = None) -> tuple:
    """Answer every job not yet in the work folder `key`; returns (answers by bench, resumed counts, stats)."""
    work = WorkFile(ctx.run_dir / WORK_DIR / key)
    done = {bench: work.load(bench) for bench in jobs}
    todo = [j for bench, js in jobs.items() for j in js if j.key not in done[bench]]
    resumed = {bench: sum(j.key in done[bench] for j in js) for bench, js in jobs.items()}
    backend_stats: dict = {}
    generated = 0
    t0 = time.perf_counter()
    if todo:
        loaded = spec.generator.open(ctx, path, chat_template or spec.chat_template)
        t0 = time.perf_counter()  # generation only, not model loading
        for job, turns, tstamp in loaded.generate(todo):
            done[job.bench][job.key] = work.append(job, turns, tstamp)
            generated += 1
        backend_stats = loaded.stats()
        failed = loaded.errors
        if failed and len(failed) / len(todo) > float(ctx.cfg.client.max_error_rate):
            raise StageError(f"infer: {len(failed)}/{len(todo)} questions failed after retries (first: {failed[0]}). "
                             f"Answered ones are kept in {work.folder}; re-run to answer only the rest.")
    seconds = time.perf_counter() - t0
    stats = {**backend_stats, "work_dir": str(work.folder), "generated": generated,
             "generation_seconds": round(seconds, 3),
             "seconds_per_question": round(seconds / generated, 4) if generated else None}
    if backend_stats.get("new_tokens") and seconds > 0:
        stats["new_tokens_per_second"] = round(backend_stats["new_tokens"] / seconds, 2)
    return done, resumed, stats


def write_answers(out_dir: Path, jobs: dict, done: dict, resumed: dict, model_id: str, counts: dict,
                  table: list) -> dict:
    """Write one model's FastChat answer files; adds to `counts` and `table`; returns bench -> file (relative)."""
    files = {}
    for bench, js in jobs.items():
        rows = [fastchat_row(j, done[bench][j.key], model_id) for j in js if j.key in done[bench]]
        out = answer_file(out_dir, bench, model_id)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(out, rows)
        files[bench] = str(out.relative_to(out_dir))
        counts[bench] = counts.get(bench, 0) + len(rows)
        counts["missing"] += len(js) - len(rows)
        answers = [t for r in rows for t in r["choices"][0]["turns"]]
        mean_chars = round(sum(map(len, answers)) / max(1, len(answers)), 1)
        empty = sum(1 for t in answers if not t)
        table.append([model_id, bench, len(js), len(rows) - resumed[bench], resumed[bench], mean_chars, empty])
    return files


def base_model(ctx, spec: InferSpec, checkpoint: Path) -> tuple[Path, str]:
    """The model before fine-tuning (the train stage's model_name_or_path) and a file holding the fine-tuned
    checkpoint's chat template: the base model answers in the same prompt format as the fine-tuned one."""
    from tacos.answers.backends import load_tokenizer

    if not spec.uses_train_stage():
        raise StageError("infer.base_answers needs this run's train stage (it answers with the train stage's base "
                         "model): unset infer.model_path, or set infer.base_answers=false")
    base = _train_stats(ctx.input_dir("train")).get("model_name_or_path")
    if not base or not Path(base).is_dir():
        raise StageError(f"infer.base_answers: the base model {base!r} of the train stage is not a local folder; "
                         f"download it first (huggingface-cli download) or set infer.base_answers=false")
    template = spec.chat_template
    if template is None:
        template_file = ctx.run_dir / WORK_DIR / "base_chat_template.jinja"
        template_file.parent.mkdir(parents=True, exist_ok=True)
        template_file.write_text(load_tokenizer(checkpoint, None).chat_template, encoding="utf-8")
        template = str(template_file)
    return checkpoint_dir(base), template


def run_infer(ctx, spec: InferSpec, asked: list) -> StageResult:
    """Answer every question the run's benchmarks ask (`asked`: QuestionToAnswer, resuming from the work file), write
    the answer files; the base model's too when infer.base_answers is set."""
    jobs = make_jobs(spec, asked, ctx.seed)
    path, key = resolve_model(ctx, spec)
    done, resumed, gen = generate(ctx, spec, jobs, path, key)
    counts: dict = {"generated": gen.pop("generated"), "resumed": sum(resumed.values()), "missing": 0}
    table: list = []
    files = write_answers(ctx.out_dir, jobs, done, resumed, spec.model_id, counts, table)
    stats = {"model_id": spec.model_id, "generator": spec.generator.name, "model_path": str(path) if path else None,
             "answer_files": files, **gen}
    if spec.base_answers:
        base_path, template = base_model(ctx, spec, path)
        base_key = config_hash({"base": checkpoint_fingerprint(base_path), "template": file_sha256(template),
                                **spec.generator.identity()})[:16]
        bdone, bresumed, bgen = generate(ctx, spec, jobs, base_path, base_key, template)
        counts["generated"] += bgen.pop("generated")
        counts["resumed"] += sum(bresumed.values())
        base_id = base_model_id(str(ctx.cfg.model.name))
        stats["base"] = {"model_id": base_id, "model_path": str(base_path),
                         "answer_files": write_answers(ctx.out_dir, jobs, bdone, bresumed, base_id, counts, table),
                         **bgen}
    ctx.add_table("answers", ANSWER_TABLE_COLUMNS, table)
    return StageResult(counts=counts, stats=stats)


def forecast_infer(ctx, spec: InferSpec, asked: list) -> dict:
    """The generator's forecast for the questions not yet in the work folder. A local generator calls no LLM: nothing
    to count (and in a dry run the checkpoint that keys its work folder may not exist yet)."""
    if not spec.generator.uses_llm:
        return empty_plan()
    jobs = make_jobs(spec, asked, ctx.seed)
    work = WorkFile(ctx.run_dir / WORK_DIR / resolve_model(ctx, spec)[1])
    todo = [j for bench, js in jobs.items() for j in js if j.key not in work.load(bench)]
    return spec.generator.forecast(ctx, todo)
