"""Stage `infer`: answers of the fine-tuned model to the five test sets and MT-Bench, in FastChat's model_answer format
(<stage>/model_answer/<bench>/<model_id>.jsonl; see infer/README.md).

The model is `infer.model_path`, or by default the checkpoint of this run's `train` stage (or the `llm` endpoint with
infer/generator=openai; the generators are tacos.eval.generators); a killed run resumes by question id
(tacos.eval.inference). Once complete, the answers are registered by run name and seed in the answers registry, where
other runs name them as judge baselines.
"""
from __future__ import annotations

from pathlib import Path

from tacos.config import to_container
from tacos.eval.inference import forecast_infer, infer_inputs, run_infer
from tacos.eval.registry import register_run
from tacos.stage import StageBase, StageResult, component


class InferStage(StageBase):
    name, components = "infer", ("infer",)

    def requires(self, cfg) -> list[str]:
        return ["train"] if component(cfg, "infer").uses_train_stage() else []

    def uses_llm(self, cfg) -> bool:
        return component(cfg, "infer").uses_llm()

    def config_slice(self, cfg) -> dict:
        return {"infer": to_container(cfg.infer), "seed": int(cfg.seed), **infer_inputs(component(cfg, "infer"))}

    def run(self, ctx) -> StageResult:
        return run_infer(ctx, ctx.component("infer"))

    def plan(self, ctx) -> dict:
        return forecast_infer(ctx, ctx.component("infer"))

    def publish(self, cfg, stage_dir: Path, manifest: dict) -> None:
        """Register this run's answers under <answers_dir>/<model>/<run_name>[-seed<k>]/ (the base model's under
        base[-seed<k>]/), so other runs name them as judge baselines: judge.baselines=[baseline_random, base]."""
        register_run(Path(cfg.paths.answers_dir) / str(cfg.model.name), str(cfg.run_name), int(cfg.seed),
                     stage_dir, manifest)


STAGE = InferStage()
