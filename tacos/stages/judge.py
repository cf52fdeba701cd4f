"""Stage `judge`: grade our model's answers (from the `infer` stage) with the run's LLM as judge.

judge.kind=pairwise: on each test set, our answer vs each baseline's, every question judged in both orders
(tacos.eval.pairwise); judge.kind=mt_bench: FastChat llm_judge single-answer grading (tacos.eval.mt_bench);
judge.kind=all: both. The config is tacos.eval.judge.JudgeSpec; layout and field names: evaluate/README.md.
"""
from __future__ import annotations

from tacos.config import to_container
from tacos.eval.judge import forecast_judge, judge_inputs, run_judge
from tacos.stage import StageBase, StageResult, component


class JudgeStage(StageBase):
    name, components = "judge", ("judge", "gate")

    def requires(self, cfg) -> list[str]:
        return ["infer"]

    def uses_llm(self, cfg) -> bool:
        return True

    def config_slice(self, cfg) -> dict:
        """The judge config, the prompt bytes, the baselines' answer files and the question files."""
        inputs = judge_inputs(component(cfg, "judge"), component(cfg, "paths").data_dir)
        return {"judge": to_container(cfg.judge), "seed": int(cfg.seed), **inputs}

    def run(self, ctx) -> StageResult:
        return run_judge(ctx, ctx.component("judge"), ctx.component("gate"))

    def plan(self, ctx) -> dict:
        return forecast_judge(ctx, ctx.component("judge"))


STAGE = JudgeStage()
