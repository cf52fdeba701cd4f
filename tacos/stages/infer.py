"""Stage `infer`: answers of the fine-tuned model to the five test sets and MT-Bench, in FastChat's model_answer format
(<stage>/model_answer/<bench>/<model_id>.jsonl; see infer/README.md).

The model is `infer.model_path`, or by default the checkpoint of this run's `train` stage. Answers are appended to
<run_dir>/.infer_work/<model key>/<bench>.jsonl as they come, outside the stage's partial folder, so a killed run
resumes by question id; the model_answer files are written at the end.
"""
from __future__ import annotations

import json
from pathlib import Path

from tacos.config import config_hash, to_container
from tacos.records import file_sha256, write_jsonl

COMPONENTS = ("infer",)
WORK_DIR = ".infer_work"


def _uses_train(cfg) -> bool:
    return cfg.infer.backend != "openai" and cfg.infer.model_path is None


def requires(cfg) -> list[str]:
    return ["train"] if _uses_train(cfg) else []


def uses_llm(cfg) -> bool:
    return cfg.infer.backend == "openai"


def config_slice(cfg) -> dict:
    from tacos.eval.answers import checkpoint_fingerprint

    s = {"infer": to_container(cfg.infer), "seed": int(cfg.seed)}
    if cfg.infer.backend != "openai" and cfg.infer.model_path is not None:
        # An explicit checkpoint is identified by its content (a train-stage checkpoint by the train manifest).
        s["checkpoint"] = checkpoint_fingerprint(cfg.infer.model_path)
    if cfg.infer.chat_template is not None:
        s["chat_template_sha256"] = file_sha256(cfg.infer.chat_template)
    return s


def _train_checkpoint(ctx) -> Path:
    from tacos.eval.answers import checkpoint_dir
    from tacos.pipeline import StageError

    train = ctx.input_dir("train")
    stats = json.loads((train / "manifest.json").read_text(encoding="utf-8")).get("stats", {})
    # "model_path": the final model folder, as tacos.train.launch.results records it.
    named = stats.get("model_path") or stats.get("checkpoint")
    if not named:
        raise StageError(f"{train / 'manifest.json'} names no model (stats.model_path); set infer.model_path=FOLDER")
    p = Path(named)
    return checkpoint_dir(p if p.is_absolute() or not (train / p).exists() else train / p)


def _model(ctx, spec) -> tuple[Path | None, str]:
    """(checkpoint folder or None for an endpoint, the key of the work folder: what the answers depend on besides
    the job itself)."""
    from tacos.eval.answers import checkpoint_dir, checkpoint_fingerprint

    if spec.backend == "openai":
        return None, config_hash({"backend": "openai", "llm": ctx.llm.identity})[:16]
    path = checkpoint_dir(spec.model_path) if spec.model_path is not None else _train_checkpoint(ctx)
    template = file_sha256(spec.chat_template) if spec.chat_template else None
    key = config_hash({"backend": spec.backend, "checkpoint": checkpoint_fingerprint(path), "chat_template": template,
                       "dtype": spec.dtype, "device": spec.device if spec.backend == "transformers" else None})
    return path, key[:16]


def _backend(ctx, spec, path: Path | None, chat_template: str | None = None):
    from tacos.eval.backends import OpenAIBackend, TransformersBackend, VllmBackend

    if spec.backend == "openai":
        return OpenAIBackend(ctx.llm)
    if spec.backend == "vllm":
        return VllmBackend(path, chat_template or spec.chat_template, spec.dtype, spec.vllm, seed=int(ctx.cfg.seed))
    return TransformersBackend(path, chat_template or spec.chat_template, spec.dtype, spec.device)


def _generate(ctx, spec, jobs: dict, path: Path | None, key: str, chat_template: str | None = None) -> tuple:
    """Answer every job not yet in the work folder `key`; returns (answers by bench, resumed counts, stats)."""
    import time

    from tacos.eval.answers import WorkFile
    from tacos.pipeline import StageError

    work = WorkFile(ctx.run_dir / WORK_DIR / key)
    done = {bench: work.load(bench) for bench in jobs}
    todo = [j for bench, js in jobs.items() for j in js if j.key not in done[bench]]
    resumed = {bench: sum(j.key in done[bench] for j in js) for bench, js in jobs.items()}
    backend_stats: dict = {}
    generated = 0
    t0 = time.perf_counter()
    if todo:
        backend = _backend(ctx, spec, path, chat_template)
        t0 = time.perf_counter()  # generation only, not model loading
        for job, turns, tstamp in backend.generate(todo):
            done[job.bench][job.key] = work.append(job, turns, tstamp)
            generated += 1
        backend_stats = backend.stats()
        failed = getattr(backend, "errors", [])
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


def _write_answers(ctx, jobs: dict, done: dict, resumed: dict, model_id: str, counts: dict, table: list) -> dict:
    from tacos.eval.answers import answer_file, fastchat_row

    files = {}
    for bench, js in jobs.items():
        rows = [fastchat_row(bench, done[bench][j.key], model_id) for j in js if j.key in done[bench]]
        out = answer_file(ctx.out_dir, bench, model_id)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(out, rows)
        files[bench] = str(out.relative_to(ctx.out_dir))
        counts[bench] = counts.get(bench, 0) + len(rows)
        counts["missing"] += len(js) - len(rows)
        answers = [t for r in rows for t in r["choices"][0]["turns"]]
        mean_chars = round(sum(map(len, answers)) / max(1, len(answers)), 1)
        empty = sum(1 for t in answers if not t)
        table.append([model_id, bench, len(js), len(rows) - resumed[bench], resumed[bench], mean_chars, empty])
    return files


def _base_model(ctx, spec, checkpoint: Path) -> tuple[Path, str]:
    """The model before fine-tuning (the train stage's model_name_or_path) and a file holding the fine-tuned
    checkpoint's chat template: the base model answers in the same prompt format as the fine-tuned one."""
    from tacos.eval.answers import checkpoint_dir
    from tacos.eval.backends import load_tokenizer
    from tacos.pipeline import StageError

    if spec.backend == "openai" or spec.model_path is not None:
        raise StageError("infer.base_answers needs this run's train stage (it answers with the train stage's base "
                         "model): unset infer.model_path, or set infer.base_answers=false")
    stats = json.loads((ctx.input_dir("train") / "manifest.json").read_text(encoding="utf-8")).get("stats", {})
    base = stats.get("model_name_or_path")
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


def run(ctx) -> dict:
    from tacos.eval.answers import checkpoint_fingerprint, load_jobs

    spec = ctx.component("infer")
    jobs = load_jobs(spec, int(ctx.cfg.seed))
    path, key = _model(ctx, spec)
    done, resumed, gen = _generate(ctx, spec, jobs, path, key)
    counts: dict = {"generated": gen.pop("generated"), "resumed": sum(resumed.values()), "missing": 0}
    table: list = []
    files = _write_answers(ctx, jobs, done, resumed, spec.model_id, counts, table)
    stats = {"model_id": spec.model_id, "backend": spec.backend, "model_path": str(path) if path else None,
             "answer_files": files, **gen}
    if spec.base_answers:
        base_path, template = _base_model(ctx, spec, path)
        base_key = config_hash({"base": checkpoint_fingerprint(base_path), "template": file_sha256(template),
                                "dtype": spec.dtype, "device": spec.device, "backend": spec.backend})[:16]
        bdone, bresumed, bgen = _generate(ctx, spec, jobs, base_path, base_key, template)
        counts["generated"] += bgen.pop("generated")
        counts["resumed"] += sum(bresumed.values())
        stats["base"] = {"model_id": base_model_id(spec, ctx.cfg), "model_path": str(base_path),
                         "answer_files": _write_answers(ctx, jobs, bdone, bresumed, base_model_id(spec, ctx.cfg),
                                                        counts, table), **bgen}
    ctx.add_table("answers", ["model_id", "bench", "questions", "generated", "resumed", "mean_chars", "empty_turns"],
                  table)
    return {"counts": counts, "stats": stats}


def base_model_id(spec, cfg) -> str:
    return f"{cfg.model.name}-base"


def publish(cfg, stage_dir: Path, manifest: dict) -> None:
    """Register this run's answers under paths.answers_dir/<model>/<run_name>/ (and the base model's under
    <model>/base/), so other runs name them as judge baselines: judge.baselines=[baseline_random, base]."""
    from tacos.eval.registry import register_answers

    stats = manifest.get("stats", {})
    root = Path(cfg.paths.answers_dir) / str(cfg.model.name)
    register_answers(stage_dir, stats.get("answer_files", {}), root / str(cfg.run_name), manifest)
    if stats.get("base"):
        register_answers(stage_dir, stats["base"]["answer_files"], root / "base", manifest)


def plan(ctx) -> dict:
    """LLM calls of the openai backend: exact for single-turn sets; MT-Bench's second turns are estimated with an
    empty first answer (unknown before it is generated). Local backends call no LLM."""
    from tacos.eval.answers import WorkFile, load_jobs
    from tacos.eval.backends import OPENAI_PROMPT_HASH, conversation
    from tacos.llm.client import LLMRequest
    from tacos.stages.common import empty_plan

    spec = ctx.component("infer")
    if spec.backend != "openai":
        return empty_plan()
    jobs = load_jobs(spec, int(ctx.cfg.seed))
    work = WorkFile(ctx.run_dir / WORK_DIR / _model(ctx, spec)[1])
    todo = [j for bench, js in jobs.items() for j in js if j.key not in work.load(bench)]
    requests = [LLMRequest(messages=tuple((m["role"], m["content"]) for m in conversation(j, [""] * turn, turn)),
                           prompt_hash=OPENAI_PROMPT_HASH, temperature=j.temperature, top_p=j.top_p,
                           max_tokens=j.max_new_tokens, seed=j.seed)
                for j in todo for turn in range(len(j.turns))]
    fc = ctx.llm.forecast(requests) if requests else empty_plan()
    return {**fc, "exact": all(len(j.turns) == 1 for j in todo)}
