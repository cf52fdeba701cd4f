"""LLMRatingJudge: an LLM grades one record at a time (the wo_contrastive ablation; AlpaGasus's 0-5 accuracy score).

Its read-out (`readout:`, tacos.judges.readout):
  TextReadout     the answer is JSON {"score": n} (`text_parser`).
  LogprobReadout  a one-digit answer (forced where the endpoint takes a grammar); the rating is the expected value
                  over the scale's digit tokens at the first position, renormalised over the digits. No digit among
                  the reported log-probabilities: invalid, never a default.
  AutoReadout     LogprobReadout where the endpoint returns log-probabilities, else TextReadout.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from tacos.data.formats import instruction_text
from tacos.judges.base import JudgeContext, NoScreen, Rating
from tacos.judges.parsers import JsonScore
from tacos.judges.readout import AutoReadout
from tacos.llm.calling.types import LLMRequest
from tacos.prompts import clip, prompts_hash, read_prompt, render
from tacos.records import Record


@dataclass
class LLMRatingJudge(NoScreen):
    name: str = "llm_rating"
    system_prompt: str = "score_system.txt"
    prompt: str = "score_single.txt"  # text read-out: {"score": n}
    digit_prompt: str = "score_single_digit.txt"  # one-token read-out: one digit
    readout: Any = field(default_factory=AutoReadout)  # tacos.judges.readout: TextReadout | LogprobReadout | Auto...
    text_parser: Any = field(default_factory=JsonScore)  # its lo / hi are the scale
    max_text_chars: int = 4000
    temperature: float = 0.0
    max_tokens: int = 32

    uses_llm = True

    @property
    def scale(self) -> tuple[float, float]:
        return self.text_parser.lo, self.text_parser.hi

    @property
    def token_prompt(self) -> str:
        """The prompt of a one-token read-out."""
        return self.digit_prompt

    def answer_values(self) -> dict[str, float]:
        """The one-token answers: the scale's digits and their values."""
        lo, hi = self.scale
        return {str(k): float(k) for k in range(int(lo), int(hi) + 1)}

    def validate(self) -> None:
        if not hasattr(self.readout, "resolve"):
            raise ValueError(f"{self.name}.readout must be a read-out object (tacos.judges.readout: TextReadout, "
                             f"LogprobReadout or AutoReadout), not {self.readout!r}")
        lo, hi = self.scale
        if lo >= hi:
            raise ValueError(f"the scale must be [low, high] with low < high, got {[lo, hi]}")
        prompts_hash(self.system_prompt, self.prompt)
        self.readout.validate(self)

    def prompt_hash(self, readout) -> str:
        return prompts_hash(self.system_prompt, readout.prompt(self))

    def identity(self, ctx: JudgeContext) -> dict:
        readout = self.readout.resolve(ctx)
        return {"judge": type(self).__name__, "prompt_hash": self.prompt_hash(readout), "scale": list(self.scale),
                **readout.identity()}

    def request(self, r: Record, readout, seed: int) -> LLMRequest:
        lo, hi = self.scale
        instruction, response = clip(instruction_text(r), self.max_text_chars), clip(r.output, self.max_text_chars)
        user = render(read_prompt(readout.prompt(self)), instruction=instruction, response=response, lo=lo, hi=hi)
        return readout.request(self, user, seed, r.id, tag="digit:")

    def requests(self, records: Sequence[Record], ctx: JudgeContext) -> list[LLMRequest]:
        readout = self.readout.resolve(ctx)
        return [self.request(r, readout, ctx.seed) for r in records]

    def rate(self, records: Sequence[Record], ctx: JudgeContext) -> list[Rating]:
        readout = self.readout.resolve(ctx)
        results = ctx.run_llm(self.requests(records, ctx), readout.parser(self),
                              desc=f"score (single{readout.describe})")
        values = self.answer_values()
        return [readout.rating(r.id, res, values) for r, res in zip(records, results)]
