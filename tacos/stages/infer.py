"""Stage `infer`: answers of the fine-tuned model to every question the run's benchmarks ask (the `benchmarks` group:
Benchmark.answer_jobs gives the questions, turns and sampling), in FastChat's model_answer format
(<stage>/model_answer/<bench>/<model_id>.jsonl; see infer/README.md). It knows no benchmark by name.

The model is `infer.model_path`, or by default the checkpoint of this run's `train` stage (or the `llm` endpoint with
infer/generator=openai; the generators are tacos.answers.generators); a killed run resumes by question id
(tacos.answers.inference). Once complete, the answers are registered by run name and seed in the answers registry,
where other runs name them as judge baselines.
"""
from __future__ import annotations

from pathlib import Path

from tacos.config import config_hash, to_container
from tacos.answers.inference import forecast_infer, infer_inputs, run_infer
from tacos.answers.registry import check_entry, entry_name, register_run
from tacos.benchmarks.suite import answer_jobs, check_benchmarks
from tacos.run_names import selection_config
from tacos.stage import StageBase, StageResult, component


class InferStage(StageBase):
    name, components = "infer", ("infer", "benchmarks")

    def requires(self, cfg) -> list[str]:
        return ["train"] if component(cfg, "infer").uses_train_stage() else []

    def uses_llm(self, cfg) -> bool:
        return component(cfg, "infer").uses_llm()

    def config_slice(self, cfg) -> dict:
        spec = component(cfg, "infer")
        # What is asked, as asked (text, turns, sampling): an edited test set is answered again (and judged again).
        asked = {bench: config_hash(qs) for bench, qs in _by_bench(asked_questions(cfg)).items()}
        return {"infer": to_container(cfg.infer), "seed": int(cfg.seed), **infer_inputs(spec), "asked": asked}

    def run(self, ctx) -> StageResult:
        return run_infer(ctx, ctx.component("infer"), asked_questions(ctx.cfg))

    def plan(self, ctx) -> dict:
        return forecast_infer(ctx, ctx.component("infer"), asked_questions(ctx.cfg))

    def preflight(self, cfg, run_dir: Path | None) -> None:
        """Before anything runs: the benchmarks are valid, and this run may not replace a registry entry that another
        run of another config made."""
        check_benchmarks(component(cfg, "benchmarks"))
        check_entry(_model_dir(cfg) / entry_name(str(cfg.run_name), int(cfg.seed)), registry_key(cfg), run_dir)

    def publish(self, cfg, stage_dir: Path, manifest: dict) -> None:
        """Register this run's answers under <answers_dir>/<model>/<run_name>/ (the base model's under
        base[-seed<k>]/), so other runs name them as pairwise baselines: [alpaca-random, base]."""
        register_run(_model_dir(cfg), str(cfg.run_name), int(cfg.seed), stage_dir, manifest, registry_key(cfg))


def _model_dir(cfg) -> Path:
    return Path(cfg.paths.answers_dir) / str(cfg.model.name)


def registry_key(cfg) -> str:
    """What the registered answers are a function of: the selection config, the model and its training, the answer
    settings and the seed (the same key for a re-run of the same command on this machine)."""
    from omegaconf import OmegaConf

    from tacos.sft.spec import NOT_IDENTITY as _NOT_IDENTITY

    def part(key: str):
        return to_container(OmegaConf.select(cfg, key, default=None))

    train = {k: v for k, v in (part("train") or {}).items() if k not in _NOT_IDENTITY}
    # What was asked and how (MT-Bench's sampling is its own); a bare config without benchmarks asks nothing.
    asked = config_hash(_by_bench(asked_questions(cfg))) if "benchmarks" in cfg else None
    return config_hash({"selection": selection_config(cfg), "model": part("model"), "train": train,
                        "infer": part("infer"), "asked": asked, "seed": int(cfg.seed)})[:16]


def asked_questions(cfg) -> list:
    """Every question the run's benchmarks ask (tacos.answers.jobs.QuestionToAnswer); infer.limit applies to each of
    their question sets. A run answers its benchmarks' questions whether or not it judges them: a baseline run
    answers the test sets for the runs that judge against it."""
    return answer_jobs(component(cfg, "benchmarks"), component(cfg, "paths").data_dir, component(cfg, "infer").limit)


def _by_bench(asked: list) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for q in asked:
        out.setdefault(q.bench, []).append(q.__dict__)
    return out


STAGE = InferStage()
