"""Stage `judge`: grade our model's answers (from the `infer` stage) on the run's benchmarks.

Its spec (tacos.benchmarks.suite.JudgeSpec, `judging` in conf/config.yaml) holds the pair judge (the `judge` group,
conf/judge/, tacos.judges) and the benchmarks (the `benchmarks` group, conf/benchmarks/, each from conf/benchmark/):
pairwise against baselines on the five test sets, MT-Bench graded as FastChat does, AlpacaEval 2, or your own.
Benchmarks return data; this stage writes it into the stage folder, and reports every judge that judged (the pair
judge with its observed position bias, MT-Bench's grader) by its config key: the runner's gate judges each of them
(tacos.judges.gate). Layout and field names: evaluate/README.md.
"""
from __future__ import annotations

from pathlib import Path

from tacos.benchmarks.base import BenchmarkResult, BenchmarkRun, JsonLines
from tacos.config import to_container
from tacos.judges.base import JudgeContext, judge_context
from tacos.records import write_jsonl
from tacos.stage import MANIFEST, StageBase, StageResult, component, empty_plan, read_manifest, write_json_atomic


class JudgeStage(StageBase):
    name, components = "judge", ("judging", "gate")

    def requires(self, cfg) -> list[str]:
        return ["infer"]

    def uses_llm(self, cfg) -> bool:
        return True

    def config_slice(self, cfg) -> dict:
        """The judging config (with the pair judge and the benchmarks it holds) and the files, prompts and baselines
        its benchmarks read (the source of the judge and benchmark classes is in the runner's code version:
        tacos.pipeline.object_modules)."""
        spec = component(cfg, "judging")
        jctx = JudgeContext(llm=component(cfg, "llm"), seed=int(cfg.seed))
        return {"judging": to_container(cfg.judging), "seed": int(cfg.seed),
                **spec.identity(component(cfg, "paths").data_dir, jctx)}

    def run(self, ctx) -> StageResult:
        spec = ctx.component("judging")
        with judge_context(ctx.session, ctx.paths.cache_dir, ctx.seed) as jctx:
            results = spec.run(benchmark_run(ctx, spec, jctx, answered=True))
            stats = {"judge_llm": ctx.llm.identity, "judge_model_name": spec.judge_name(ctx.llm.identity),
                     **spec.gate_stats(results, jctx, ctx.llm.identity)}
        counts: dict = {}
        for result in results.values():
            write_result(ctx, result)
            counts.update(result.counts)
            stats.update(result.stats)
        stats["report_rows"] = spec.report_rows(results)  # what `tacos report` shows of each benchmark
        return StageResult(counts=counts, stats=stats)

    def plan(self, ctx) -> dict:
        """Exact when the infer stage's answers and every baseline's are there; otherwise every question is assumed
        answered by placeholders (call counts exact, token counts a lower bound)."""
        spec = ctx.component("judging")
        jctx = JudgeContext(llm=ctx.llm, cache=None, seed=ctx.seed, progress=False)
        answered = (ctx.run_dir / "infer" / MANIFEST).is_file()
        requests, exact = spec.requests(benchmark_run(ctx, spec, jctx, answered))
        if not requests:
            return empty_plan()
        return {**ctx.llm.forecast(requests), "exact": exact}


def benchmark_run(ctx, spec, jctx: JudgeContext, answered: bool) -> BenchmarkRun:
    """What the benchmarks work with; our answers are the infer stage's (its fine-tuned model's unless
    judging.model_id names another file there)."""
    infer = read_manifest(ctx.run_dir, "infer") or {}
    return BenchmarkRun(infer_dir=ctx.run_dir / "infer" if not answered else ctx.input_dir("infer"),
                        model_id=spec.model_id or infer.get("stats", {}).get("model_id"),
                        data_dir=Path(ctx.paths.data_dir), limit=spec.limit, seed=ctx.seed, pair_judge=spec.pair_judge,
                        jctx=jctx, judge_name=spec.judge_name(ctx.llm.identity), llm_identity=ctx.llm.identity,
                        answered=answered)


def write_result(ctx, result: BenchmarkResult) -> None:
    """A benchmark's files, charts and tables, into the stage folder."""
    for rel, content in result.files.items():
        path = ctx.out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, JsonLines):
            write_jsonl(path, content.rows)
        else:
            write_json_atomic(path, content.value)
    for chart in result.charts:
        path = ctx.out_dir / chart.path
        path.parent.mkdir(parents=True, exist_ok=True)
        chart.plot(chart.data, path, chart.title)
        ctx.add_plot(path)
    for name, t in result.tables.items():
        ctx.add_table(name, t["columns"], t["data"])


STAGE = JudgeStage()
