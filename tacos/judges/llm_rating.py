"""LLMRatingJudge: an LLM grades one record at a time (the wo_contrastive ablation; AlpaGasus's 0-5 accuracy score).

  text     the answer is JSON {"score": n} (`text_parser`).
  logprob  a one-digit answer (forced where the endpoint takes a grammar); the rating is the expected value over the
           scale's digit tokens at the first position, renormalised over the digits (tacos.judges.readout). No digit
           among the reported log-probabilities: invalid, never a default.
  auto     logprob where the endpoint returns log-probabilities, else text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from tacos.data.formats import instruction_text
from tacos.judges.base import JudgeContext, NoScreen, Rating
from tacos.judges.parsers import JsonScore
from tacos.judges.readout import expected_value, read_answer
from tacos.llm.types import LLMRequest
from tacos.prompts import clip, prompts_hash, read_prompt, render
from tacos.records import Record

JUDGMENTS = ("text", "logprob", "auto")


@dataclass
class LLMRatingJudge(NoScreen):
    name: str = "llm_rating"
    system_prompt: str = "score_system.txt"
    prompt: str = "score_single.txt"  # text judgments: {"score": n}
    digit_prompt: str = "score_single_digit.txt"  # logprob judgments: one digit
    judgment: str = "auto"
    text_parser: Any = field(default_factory=JsonScore)  # its lo / hi are the scale
    top_logprobs: int = 10
    force_answer: bool = True  # logprob judgments: a grammar allows only the scale's digits where the endpoint takes one
    max_text_chars: int = 4000
    temperature: float = 0.0
    max_tokens: int = 32

    uses_llm = True

    @property
    def scale(self) -> tuple[float, float]:
        return self.text_parser.lo, self.text_parser.hi

    def validate(self) -> None:
        if self.judgment not in JUDGMENTS:
            raise ValueError(f"judgment must be one of {JUDGMENTS}, not {self.judgment!r}")
        lo, hi = self.scale
        if lo >= hi:
            raise ValueError(f"the scale must be [low, high] with low < high, got {[lo, hi]}")
        prompts_hash(self.system_prompt, self.prompt)
        if self.judgment != "text":
            prompts_hash(self.system_prompt, self.digit_prompt)
            if not (0 <= lo and hi <= 9):
                raise ValueError(f"judgment={self.judgment} reads one digit token: the scale must lie in 0-9, "
                                 f"got {[lo, hi]}")

    def mode(self, ctx: JudgeContext) -> str:
        return "logprob" if self.judgment == "logprob" or (self.judgment == "auto" and ctx.supports_logprobs) \
            else "text"

    def prompt_hash(self, mode: str) -> str:
        return prompts_hash(self.system_prompt, self.digit_prompt if mode == "logprob" else self.prompt)

    def identity(self, ctx: JudgeContext) -> dict:
        mode = self.mode(ctx)
        out = {"judge": type(self).__name__, "mode": mode, "prompt_hash": self.prompt_hash(mode),
               "scale": list(self.scale)}
        return {**out, "force_answer": self.force_answer} if mode == "logprob" else out

    def _digits(self) -> dict[str, float]:
        lo, hi = self.scale
        return {str(k): float(k) for k in range(int(lo), int(hi) + 1)}

    def request(self, r: Record, mode: str, seed: int) -> LLMRequest:
        lo, hi = self.scale
        instruction, response = clip(instruction_text(r), self.max_text_chars), clip(r.output, self.max_text_chars)
        system = ("system", read_prompt(self.system_prompt).strip())
        if mode == "logprob":
            user = render(read_prompt(self.digit_prompt), instruction=instruction, response=response, lo=lo, hi=hi)
            return LLMRequest(messages=(system, ("user", user)), prompt_hash=self.prompt_hash(mode), temperature=0.0,
                              max_tokens=1, seed=seed, logprobs=self.top_logprobs, label=f"digit:{r.id}",
                              choices=tuple(self._digits()) if self.force_answer else ())
        user = render(read_prompt(self.prompt), instruction=instruction, response=response, lo=lo, hi=hi)
        return LLMRequest(messages=(system, ("user", user)), prompt_hash=self.prompt_hash(mode),
                          temperature=self.temperature, max_tokens=self.max_tokens, schema=self.text_parser.schema(),
                          seed=seed, label=r.id)

    def requests(self, records: Sequence[Record], ctx: JudgeContext) -> list[LLMRequest]:
        mode = self.mode(ctx)
        return [self.request(r, mode, ctx.seed) for r in records]

    def rate(self, records: Sequence[Record], ctx: JudgeContext) -> list[Rating]:
        mode = self.mode(ctx)
        parser = (lambda raw: raw) if mode == "logprob" else self.text_parser.parse
        results = ctx.run_llm(self.requests(records, ctx), parser,
                              desc=f"score (single{', log-probabilities' if mode == 'logprob' else ''})")
        out = []
        for r, res in zip(records, results):
            if res.status != "ok":
                out.append(Rating(r.id, None, {"status": res.status}, res.error or res.status))
            elif mode == "text":
                out.append(Rating(r.id, float(res.parsed), {"status": "ok"}))
            else:
                read = read_answer(res.logprobs, tuple(self._digits()), require_all=False)
                value = expected_value(read, self._digits())
                out.append(Rating(r.id, value, {"status": "ok", "answer_mass": read.mass}, read.reason))
        return out
