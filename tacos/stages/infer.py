"""Stage `infer`: answers of the fine-tuned model to the five test sets and MT-Bench, in FastChat's model_answer format
(<stage>/model_answer/<bench>/<model_id>.jsonl; see infer/README.md).

The model is `infer.model_path`, or by default the checkpoint of this run's `train` stage (or the `llm` endpoint with
infer/generator=openai; the generators are tacos.answers.generators); a killed run resumes by question id
(tacos.answers.inference). Besides infer's own sets it answers whatever the run's judge benchmarks ask beyond them (e.g.
AlpacaEval 2's instructions when judge.benchmarks has alpaca_eval2; the bundled sets stay infer's own choice). Once complete, the answers are registered by run
name and seed in the answers registry, where other runs name them as judge baselines.
"""
from __future__ import annotations

from pathlib import Path

from tacos.config import config_hash, to_container
from tacos.data.benchmark_sets import MT_BENCH, TEST_SETS, question_file
from tacos.answers.inference import forecast_infer, infer_inputs, run_infer
from tacos.answers.registry import check_entry, entry_name, register_run
from tacos.run_names import selection_config
from tacos.stage import StageBase, StageResult, component, files_read


BUNDLED_SETS = (*TEST_SETS, MT_BENCH)


class InferStage(StageBase):
    name, components = "infer", ("infer",)

    def requires(self, cfg) -> list[str]:
        return ["train"] if component(cfg, "infer").uses_train_stage() else []

    def uses_llm(self, cfg) -> bool:
        return component(cfg, "infer").uses_llm()

    def config_slice(self, cfg) -> dict:
        spec, data_dir = component(cfg, "infer"), component(cfg, "paths").data_dir
        out = {"infer": to_container(cfg.infer), "seed": int(cfg.seed), **infer_inputs(spec),
               # the questions of its bundled sets: an edited test set is answered again (and judged again)
               "question_files": files_read({bench: question_file(bench, data_dir) for bench in spec.benches()})}
        asked = judge_asks(cfg)
        if asked:  # absent otherwise: the identity of a run without such a benchmark stays what it was
            out["judge_asks"] = {bench: config_hash([q.__dict__ for q in qs]) for bench, qs in asked.items()}
        return out

    def run(self, ctx) -> StageResult:
        return run_infer(ctx, ctx.component("infer"), judge_asks(ctx.cfg))

    def plan(self, ctx) -> dict:
        return forecast_infer(ctx, ctx.component("infer"), judge_asks(ctx.cfg))

    def preflight(self, cfg, run_dir: Path | None) -> None:
        """Before anything runs: this run may not replace a registry entry that another run of another config made."""
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
    return config_hash({"selection": selection_config(cfg), "model": part("model"), "train": train,
                        "infer": part("infer"), "seed": int(cfg.seed)})[:16]


def judge_asks(cfg) -> dict:
    """bench -> questions of the sets the run's judge benchmarks bring (e.g. AlpacaEval 2's instructions); infer.limit
    applies to them too. The bundled sets stay infer's own choice (infer.test_sets, infer.mt_bench): a baseline run
    answers the five test sets for the runs that judge against it, whatever its own judge config grades."""
    spec = component(cfg, "infer")
    asked = component(cfg, "judge").questions(component(cfg, "paths").data_dir, spec.limit)
    return {bench: qs for bench, qs in asked.items() if bench not in BUNDLED_SETS}


STAGE = InferStage()
