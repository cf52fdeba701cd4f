"""The `judge` config (JudgeSpec) and what the judge stage does with it: pairwise judging against baselines
(tacos.eval.pairwise), MT-Bench grading (tacos.eval.mt_bench), or both; its input identity and its forecast.

Every call goes through the run's LLM session (cache, retries, budget): a re-run or a larger `judge.limit` only makes
the calls that are not answered yet. Layout and field names: evaluate/README.md.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from tacos.data.benchmark_sets import MT_BENCH, load_mt_bench, load_test_set, mt_bench_file, test_set_file
from tacos.eval.answer_files import our_answers, placeholder_answers
from tacos.eval.baselines import baseline_fingerprints, load_baselines
from tacos.eval.mt_bench import judge_mt_bench, mt_bench_requests
from tacos.eval.pairwise import judge_pairwise, pairwise_matches, pairwise_requests
from tacos.prompts import prompts_hash
from tacos.records import file_sha256
from tacos.stage import StageError, StageResult, empty_plan

log = logging.getLogger(__name__)

KINDS = ("pairwise", "mt_bench", "all")
MT_BENCH_FILES = ("question.jsonl", "judge_prompts.jsonl", "reference_answer/gpt-4.jsonl")
# A hash-like part of an LLM identity (a model file's sha256, a settings digest): left out of the judge's name.
_HASH_PART = re.compile(r"^[0-9a-f]{16,}$")


@dataclass
class JudgeSpec:
    """How the `judge` stage grades our model's answers (conf/judge/*.yaml, evaluate/README.md).

    kind: pairwise (our answers vs each baseline's on `test_sets`, both orders), mt_bench (FastChat single-answer
    grading of our MT-Bench answers) or all (both, in one stage folder).
    """

    name: str
    kind: str  # pairwise | mt_bench | all
    test_sets: list[str] = field(default_factory=list)  # pairwise test sets
    # Baseline answers: FastChat answer files, folders of <bench>/<model_id>.jsonl, or run dirs with infer/.
    baselines: list[str] = field(default_factory=list)
    system_prompt: str = "judge_pairwise_system.txt"
    prompt: str = "judge_pairwise.txt"
    model_id: str | None = None  # our answer file in <run>/infer/model_answer/<bench>/; None: the only one there
    # Where bare baseline names are looked up: <answers_dir>/<name>/<bench>/*.jsonl (the infer stage registers
    # every run's answers there under its run name (+ -seed<k>), and the base model's under `base`).
    answers_dir: str | None = None
    missing_baselines: str = "skip"  # a bare name not registered yet: skip (logged, listed in the manifest) | error
    # The judge's name in FastChat judgment files (`judge` field, file <name>_single.jsonl, show_result's
    # --judge-model). None: derived from the LLM that judges (judge_name_from_identity).
    judge_model_name: str | None = None
    limit: int | None = None  # judge only the first N questions of every test set (CPU runs)
    temperature: float = 0.0
    max_tokens: int = 512  # pairwise calls (the reference: 512)
    mt_bench_max_tokens: int = 2048  # MT-Bench calls (FastChat: 2048)
    n_boot: int = 1000  # bootstrap resamples for the pairwise score CI
    seed: int = 0  # ${seed}: the seed of every judge call (and of the bootstrap)

    def validate(self) -> None:
        from tacos.data.benchmark_sets import TEST_SETS

        if self.kind not in KINDS:
            raise ValueError(f"judge.kind must be pairwise, mt_bench or all, not {self.kind!r}")
        unknown = [t for t in self.test_sets if t not in TEST_SETS]
        if unknown:
            raise ValueError(f"judge.test_sets: unknown {unknown}; valid: {list(TEST_SETS)}")
        if self.kind != "mt_bench":
            if not self.test_sets:
                raise ValueError("judge.test_sets is empty: name at least one of " + ", ".join(TEST_SETS))
            prompts_hash(self.system_prompt, self.prompt)  # a missing prompt file fails here, before any work
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"judge.limit must be a positive number of questions or null, got {self.limit}")
        if min(self.max_tokens, self.mt_bench_max_tokens) < 1 or self.n_boot < 1:
            raise ValueError("judge.max_tokens, judge.mt_bench_max_tokens and judge.n_boot must be >= 1")
        if self.missing_baselines not in ("skip", "error"):
            raise ValueError(f"judge.missing_baselines must be skip or error, not {self.missing_baselines!r}")
        if self.judge_model_name is not None and not str(self.judge_model_name).strip():
            raise ValueError("judge.judge_model_name must be null (derived from the llm) or a non-empty name "
                             "(FastChat's show_result selects the judgment file by it)")

    def does(self, kind: str) -> bool:
        """Whether this config runs `kind` (pairwise or mt_bench)."""
        return self.kind in (kind, "all")

    def judge_name(self, llm_identity: str) -> str:
        """The name written into FastChat judgment files: judge_model_name, or one derived from the judging LLM."""
        return self.judge_model_name or judge_name_from_identity(llm_identity)


def judge_name_from_identity(identity: str) -> str:
    """A short file-safe name of the LLM that judges: its provider and model, without hashes.

    "llama_cpp:qwen2.5-coder-0.5b:<sha256>" -> "llama_cpp-qwen2.5-coder-0.5b"; "openai:gpt-4-0613" ->
    "openai-gpt-4-0613"; "vllm:meta-llama/Llama-3-8B" -> "vllm-meta-llama_Llama-3-8B"."""
    kind, *rest = identity.split(":")
    while rest and _HASH_PART.match(rest[-1]):
        rest.pop()
    name = "-".join(p for p in (kind, ":".join(rest)) if p)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.") or "judge"


def judge_inputs(spec: JudgeSpec, data_dir) -> dict:
    """The files besides the config that determine the judge stage's output: prompt bytes, the question files and
    every baseline's answer files (editing any re-runs the stage; unchanged calls still come from the cache)."""
    out: dict = {}
    if spec.does("pairwise"):
        out["prompt_hash"] = prompts_hash(spec.system_prompt, spec.prompt)
        out["test_set_files"] = {t: file_sha256(test_set_file(t, data_dir)) for t in spec.test_sets}
        out["baselines"] = baseline_fingerprints(spec)
    if spec.does("mt_bench"):
        out["mt_bench_files"] = {name: file_sha256(mt_bench_file(name, data_dir)) for name in MT_BENCH_FILES}
    return out


def run_judge(ctx, spec: JudgeSpec, gate) -> StageResult:
    """Judge our answers (the infer stage's) as `spec.kind` says; the files go to ctx.out_dir. Pairwise judging
    records the gate's verdict on the judge (tacos.eval.gate)."""
    from tacos.eval.gate import find, judge_gate as gate_verdict

    judge_name = spec.judge_name(ctx.llm.identity)
    counts: dict = {}
    stats: dict = {"judge_llm": ctx.llm.identity, "judge_model_name": judge_name}
    if spec.does("pairwise"):
        baselines, absent = load_baselines(spec)
        stats["absent_baselines"] = absent
        if baselines:
            ours = our_answers(ctx.input_dir("infer"), spec.model_id, list(spec.test_sets))
            c, pairwise = judge_pairwise(ctx, spec, ours, baselines, absent)
            stats["pairwise"] = pairwise["results"]
            stats.update(pairwise["position_bias"])
            verdict = gate_verdict(pairwise["position_bias"], "text",
                                      find(gate.measurements, ctx.llm.identity,
                                           prompts_hash(spec.system_prompt, spec.prompt), "text"), gate)
            stats.update(verdict)
            if not verdict["judge_informative"]:
                if gate.on_fail == "error":
                    raise StageError("judge: the judge is not shown to be informative: "
                                     + "; ".join(verdict["judge_gate_reasons"]) + " (gate.on_fail=error)")
                log.warning("judge: the judge %s is not shown to be informative: %s", ctx.llm.identity,
                            "; ".join(verdict["judge_gate_reasons"]))
            counts.update(c)
        elif spec.kind == "all":
            log.warning("judge: none of the baselines %s is registered yet: pairwise judging skipped, MT-Bench only",
                        absent)
        else:
            raise StageError(f"judge: none of the baselines {absent} has registered answers in {spec.answers_dir}; "
                             f"run those experiments with the same model first (or use judge=mt_bench)")
    if spec.does("mt_bench"):
        answers = our_answers(ctx.input_dir("infer"), spec.model_id, [MT_BENCH])[MT_BENCH]
        c, stats["mt_bench"] = judge_mt_bench(ctx, spec, answers, judge_name)
        counts.update(c)
    return StageResult(counts=counts, stats=stats)


def forecast_judge(ctx, spec: JudgeSpec) -> dict:
    """The judge's calls, tokens and cost. Exact when the infer stage's answers and every baseline's are there;
    otherwise every question is assumed answered by placeholders (call counts exact, token counts a lower bound)."""
    data_dir = ctx.paths.data_dir
    infer_dir = ctx.run_dir / "infer"
    answered = (infer_dir / "manifest.json").is_file()
    exact = answered
    requests = []
    if spec.does("pairwise"):
        benches = list(spec.test_sets)
        baselines, absent = load_baselines(spec)
        for name in absent:
            # Forecast as if registered: `base` is answered by this run's infer stage, other names by the runs a
            # sweep (multirun.sh) puts before this one.
            baselines[name] = {b: placeholder_answers(load_test_set(b, spec.limit, data_dir), name) for b in benches}
            exact = False
        if baselines:
            ours = (our_answers(infer_dir, spec.model_id, benches) if answered
                    else {b: placeholder_answers(load_test_set(b, spec.limit, data_dir)) for b in benches})
            requests += pairwise_requests(spec, pairwise_matches(spec, ours, baselines, data_dir)[0])
    if spec.does("mt_bench"):
        answers = (our_answers(infer_dir, spec.model_id, [MT_BENCH])[MT_BENCH] if answered
                   else placeholder_answers(load_mt_bench(spec.limit, data_dir)))
        requests += mt_bench_requests(spec, answers, data_dir)
    if not requests:
        return empty_plan()
    return {**ctx.llm.forecast(requests), "exact": exact}
