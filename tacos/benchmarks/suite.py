"""The judge stage's spec (JudgeSpec, built from `judging` in conf/config.yaml): the pair judge (the `judge` group,
conf/judge/) and the benchmarks (the `benchmarks` group, conf/benchmarks/, each composed from conf/benchmark/); what
they ask the infer stage (answer_jobs), their input identity, their forecast, one run over all of them, the report's
rows, and what the gate needs to know about its judges (tacos.judges.gate.gate_stats). Nothing here knows a
benchmark by name.

Every call goes through the run's LLM session (cache, retries, budget): a re-run or a larger `judging.limit` only
makes the calls that are not answered yet. Benchmarks return data; the stage writes it. Layout: evaluate/README.md.
"""
from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tacos.answers.jobs import QuestionToAnswer
from tacos.benchmarks.base import Benchmark, BenchmarkResult, BenchmarkRun
from tacos.judges.base import JudgeContext, PairJudge
from tacos.judges.gate import gate_stats

log = logging.getLogger(__name__)

# A hash-like part of an LLM identity (a model file's sha256, a settings digest): left out of the judge's name.
_HASH_PART = re.compile(r"^[0-9a-f]{16,}$")


PAIR_JUDGE_KEY = "judge"  # where the pair judge is in the config (gate keys, `tacos judge-eval --judge judge`)
BENCHMARKS_KEY = "benchmarks"


@dataclass
class JudgeSpec:
    """How the `judge` stage grades our model's answers: `benchmarks` (name -> a Benchmark object), judged where they
    compare two answers by `pair_judge` (an LLM judge object, tacos.judges)."""

    pair_judge: Any = None  # tacos.judges.base.PairJudge: the `judge` group (conf/judge/*.yaml)
    benchmarks: dict[str, Any] = field(default_factory=dict)  # the `benchmarks` group, run in this order
    model_id: str | None = None  # our answer files in <run>/infer/model_answer/<bench>/; None: the infer stage's
    # The judge's name in FastChat judgment files (`judge` field, file <name>_single.jsonl, show_result's
    # --judge-model). None: derived from the LLM that judges (judge_name_from_identity).
    judge_model_name: str | None = None
    limit: int | None = None  # judge only the first N questions of every benchmark (CPU runs)

    def validate(self) -> None:
        check_benchmarks(self.benchmarks)
        if any(b.uses_pair_judge for b in self.benchmarks.values()):
            if not isinstance(self.pair_judge, PairJudge):
                raise ValueError(f"{PAIR_JUDGE_KEY} must be a pair judge object (conf/judge/*.yaml) for "
                                 f"{[k for k, b in self.benchmarks.items() if b.uses_pair_judge]}, "
                                 f"got {self.pair_judge!r}")
            self.pair_judge.validate()
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"judging.limit must be a positive number of questions or null, got {self.limit}")
        if self.judge_model_name is not None and not str(self.judge_model_name).strip():
            raise ValueError("judging.judge_model_name must be null (derived from the llm) or a non-empty name "
                             "(FastChat's show_result selects the judgment file by it)")

    def uses_pair_judge(self) -> bool:
        return any(b.uses_pair_judge for b in self.benchmarks.values())

    def judge_name(self, llm_identity: str) -> str:
        """The name written into FastChat judgment files: judge_model_name, or one derived from the judging LLM."""
        return self.judge_model_name or judge_name_from_identity(llm_identity)

    def identity(self, data_dir: Path, jctx: JudgeContext) -> dict:
        """What besides the config determines the stage's output: the pair judge's identity (its prompt bytes) and
        each benchmark's files and baselines (editing any re-runs the stage; unchanged calls still come from the
        cache)."""
        out: dict = {"benchmarks": {b.name: b.identity(data_dir) for b in self.benchmarks.values()}}
        if self.uses_pair_judge():
            out["pair_judge"] = self.pair_judge.identity(jctx)
        return out

    def requests(self, run: BenchmarkRun) -> tuple[list, bool]:
        """Every LLM request the benchmarks would make, and whether that list is exact."""
        requests, exact = [], True
        for b in self.benchmarks.values():
            r, e = b.requests(run)
            requests += r
            exact = exact and e
        return requests, exact

    def run(self, run: BenchmarkRun) -> dict[str, BenchmarkResult]:
        """Each benchmark's result; a benchmark with nothing to judge yet (`skipped`) is a warning, unless no
        benchmark judged anything."""
        results = {b.name: b.run(run) for b in self.benchmarks.values()}
        skipped = {name: r.skipped for name, r in results.items() if r.skipped}
        if skipped and len(skipped) == len(results):
            raise ValueError("judge: " + "; ".join(f"{name}: {why}" for name, why in skipped.items()))
        for name, why in skipped.items():
            log.warning("judge: %s skipped: %s", name, why)
        return results

    def report_rows(self, results: dict[str, BenchmarkResult]) -> dict[str, list[dict]]:
        """bench -> its rows of the results table (Benchmark.summary), kept in the manifest: `tacos report` reads them
        from there and knows no benchmark."""
        return {b.name: [asdict(row) for row in b.summary(results[b.name].stats)]
                for b in self.benchmarks.values() if b.name in results and not results[b.name].skipped}

    def gate_stats(self, results: dict[str, BenchmarkResult], jctx: JudgeContext, llm_identity: str) -> dict:
        """What the gate reads from the manifest (tacos.judges.gate.record_verdict): every judge that judged here,
        by its place in the config (what `tacos judge-eval --judge` takes to measure it under the same key): the
        pair judge with the position bias it showed in both orders, and each benchmark's own rating judge (MT-Bench's
        FastChat grader). Empty when nothing was judged."""
        judges = {}
        verdicts = [v for r in results.values() for v in r.pair_verdicts]
        if verdicts:
            judges[PAIR_JUDGE_KEY] = gate_stats(self.pair_judge, jctx, llm_identity, verdicts, PAIR_JUDGE_KEY)
        for key, b in self.benchmarks.items():
            ratings = results[b.name].ratings if b.name in results else []
            if ratings:
                path = f"{BENCHMARKS_KEY}.{key}.judge"
                judges[path] = gate_stats(b.judge, jctx, llm_identity, ratings, path)
        return {"gate_judges": judges} if judges else {}


def check_benchmarks(benchmarks: dict[str, Any]) -> None:
    """The `benchmarks` group: at least one Benchmark object, each valid, no two writing one folder."""
    if not benchmarks:
        raise ValueError(f"{BENCHMARKS_KEY} is empty: choose a preset (benchmarks=pairwise | mt_bench | all | paper | "
                         f"alpaca_eval2) or add one from conf/benchmark/ "
                         f"(+benchmark@{BENCHMARKS_KEY}.alpaca_eval2=alpaca_eval2)")
    for key, b in benchmarks.items():
        if not isinstance(b, Benchmark):
            raise ValueError(f"{BENCHMARKS_KEY}.{key} is not a benchmark object (a conf/benchmark/*.yaml with a "
                             f"_target_ whose class follows tacos.benchmarks.base.Benchmark), got {b!r}")
        b.validate()
    names = [b.name for b in benchmarks.values()]
    if len(set(names)) != len(names):
        raise ValueError(f"{BENCHMARKS_KEY}: two benchmarks write the same folder: {names}")


def answer_jobs(benchmarks: dict[str, Any], data_dir: Path, limit: int | None) -> list[QuestionToAnswer]:
    """Every question the benchmarks ask, in their order (what the infer stage answers; `limit`: infer.limit)."""
    return [q for b in benchmarks.values() for q in b.answer_jobs(Path(data_dir), limit)]


def judge_name_from_identity(identity: str) -> str:
    """A short file-safe name of the LLM that judges: its provider and model, without hashes.

    "llama_cpp:qwen2.5-coder-0.5b:<sha256>" -> "llama_cpp-qwen2.5-coder-0.5b"; "openai:gpt-4-0613" ->
    "openai-gpt-4-0613"; "vllm:meta-llama/Llama-3-8B" -> "vllm-meta-llama_Llama-3-8B"."""
    kind, *rest = identity.split(":")
    while rest and _HASH_PART.match(rest[-1]):
        rest.pop()
    name = "-".join(p for p in (kind, ":".join(rest)) if p)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.") or "judge"
