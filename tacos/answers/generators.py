"""The answer generators of stage `infer`, one class each, chosen by `infer.generator._target_`
(conf/infer/generator/{transformers,vllm,openai}.yaml; on the command line `infer/generator=vllm`).

A generator is a small config object: cheap to build, checked by `validate()` before any stage runs. `open()` loads
the model (or binds the run's LLM session) and returns the loaded generator of tacos.answers.backends, which answers
the jobs. The interface the infer stage drives (tacos.answers.jobs.AnswerGenerator):

    needs_checkpoint      answers with a local model folder (infer.model_path, or this run's train-stage checkpoint)
    uses_llm              answers through the run's `llm` endpoint (cached, retried, budgeted)
    identity()            its settings that change the answers: part of the key of the resumable work folder
    open(ctx, model, chat_template) -> .generate(jobs) yielding (job, answers per turn, tstamp), .stats(), .errors
    forecast(ctx, jobs)   the LLM calls, tokens and cost of answering `jobs` (local generators call no LLM)
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

from tacos.answers.jobs import AnswerJob
from tacos.stage import empty_plan

DTYPES = ("auto", "float32", "bfloat16", "float16")


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"infer.generator.dtype must be one of {DTYPES}, not {dtype!r}")


@dataclass
class TransformersGenerator:
    """AutoModelForCausalLM.generate on CPU or GPU, one question at a time, with the checkpoint's chat template."""

    dtype: str = "auto"  # auto: bfloat16 on a GPU that supports it (else float16), float32 on CPU
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    name: ClassVar[str] = "transformers"
    needs_checkpoint: ClassVar[bool] = True
    uses_llm: ClassVar[bool] = False

    def validate(self) -> None:
        _check_dtype(self.dtype)

    def identity(self) -> dict:
        # The keys the work folder was named by before generators were objects: earlier work folders still resume.
        return {"backend": self.name, "dtype": self.dtype, "device": self.device}

    def open(self, ctx, model: Path | None, chat_template: str | None):
        from tacos.answers.backends import TransformersBackend

        return TransformersBackend(model, chat_template, self.dtype, self.device)

    def forecast(self, ctx, jobs: Sequence[AnswerJob]) -> dict:
        return empty_plan()


@dataclass
class VllmGenerator:
    """vLLM's offline LLM class on a GPU: batches of questions, a seed per request."""

    dtype: str = "auto"
    engine_args: dict = field(default_factory=dict)  # extra vllm.LLM arguments: {tensor_parallel_size: 2, ...}

    name: ClassVar[str] = "vllm"
    needs_checkpoint: ClassVar[bool] = True
    uses_llm: ClassVar[bool] = False

    def validate(self) -> None:
        _check_dtype(self.dtype)
        if importlib.util.find_spec("vllm") is None:
            raise ValueError("infer/generator=vllm needs the vllm package, which is not installed: pip install vllm in "
                             "a separate env on a GPU machine (it pins its own torch), or use infer/generator=openai "
                             "against a running vLLM server, or infer/generator=transformers")

    def identity(self) -> dict:
        return {"backend": self.name, "dtype": self.dtype}

    def open(self, ctx, model: Path | None, chat_template: str | None):
        from tacos.answers.backends import VllmBackend

        return VllmBackend(model, chat_template, self.dtype, self.engine_args, seed=ctx.seed)

    def forecast(self, ctx, jobs: Sequence[AnswerJob]) -> dict:
        return empty_plan()


@dataclass
class EndpointGenerator:
    """Any OpenAI-compatible chat endpoint, the one configured as `llm` (the embedded local server, a vLLM server,
    an API): the endpoint applies its own chat template."""

    name: ClassVar[str] = "openai"
    needs_checkpoint: ClassVar[bool] = False
    uses_llm: ClassVar[bool] = True

    def validate(self) -> None:
        return None  # the `llm` config group and `client` are validated with the run

    def identity(self) -> dict:
        return {"backend": self.name}  # the work-folder key adds the endpoint's identity

    def open(self, ctx, model: Path | None, chat_template: str | None):
        from tacos.answers.backends import OpenAIBackend

        return OpenAIBackend(ctx.llm)

    def forecast(self, ctx, jobs: Sequence[AnswerJob]) -> dict:
        """Exact for single-turn sets; MT-Bench's second turns are estimated with an empty first answer (unknown
        before it is generated)."""
        from tacos.answers.backends import endpoint_request

        requests = [endpoint_request(j, [""] * turn, turn) for j in jobs for turn in range(len(j.turns))]
        fc = ctx.llm.forecast(requests) if requests else empty_plan()
        return {**fc, "exact": all(len(j.turns) == 1 for j in jobs)}
