"""LLMPairJudge: an LLM shown two records side by side, every pair in both presentation orders.

Its read-out (`readout:`, tacos.judges.readout) decides how an answer is asked for and read:
  TextReadout     the answer holds two scores (the `text_parser`: JSON 1-6 for data scoring, "8 7" on the first line
                  for the judge stage); each order gives a verdict, the two combine by the reference rule
                  (tacos.judges.orders).
  LogprobReadout  a one-token answer ("1" or "2"), forced where the endpoint takes a grammar and optionally
                  prefilled; P(first better) is read over the two answer tokens only in both orders and the position
                  pull cancels exactly. A missing answer token makes the order invalid, never a floor value.
  AutoReadout     LogprobReadout where the endpoint returns log-probabilities, else TextReadout.
Each order's result is an OrderResult (tacos.judges.base) that carries its verdict.
The same class judges data records (score stage: two instructions, `score_pair*.txt`) and model answers (judge
stage: one question, `judge_pairwise.txt`): the prompt is rendered with instruction_i / response_i and with
question / answer_i, so either kind of template works.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from tacos.data.formats import instruction_text
from tacos.judges.base import JudgeContext, NoScreen, PairVerdict
from tacos.judges.orders import position_stats
from tacos.judges.parsers import JsonScorePair
from tacos.judges.readout import AutoReadout
from tacos.llm.calling.types import LLMRequest
from tacos.prompts import clip, prompts_hash, read_prompt, render
from tacos.records import Record

ANSWERS = ("1", "2")


@dataclass
class LLMPairJudge(NoScreen):
    name: str = "llm_pair"
    system_prompt: str = "score_system.txt"
    prompt: str = "score_pair.txt"  # text read-out
    preference_prompt: str = "score_pair_preference.txt"  # one-token read-out: answer "1" or "2"
    readout: Any = field(default_factory=AutoReadout)  # tacos.judges.readout: TextReadout | LogprobReadout | Auto...
    text_parser: Any = field(default_factory=JsonScorePair)
    tie_margin: float = 0.0  # text read-out: score differences up to this are ties
    max_text_chars: int = 4000  # each instruction and response is clipped (head + tail, marked) so two fit
    temperature: float = 0.0
    max_tokens: int = 48  # text read-out
    label_prefix: str = ""  # request labels (logs only)

    uses_llm = True

    @property
    def token_prompt(self) -> str:
        """The prompt of a one-token read-out."""
        return self.preference_prompt

    def answer_values(self) -> dict[str, float]:
        """The one-token answers: "1" (the first response is better) and "2"."""
        return {t: float(t) for t in ANSWERS}

    def validate(self) -> None:
        if not hasattr(self.readout, "resolve"):
            raise ValueError(f"{self.name}.readout must be a read-out object (tacos.judges.readout: TextReadout, "
                             f"LogprobReadout or AutoReadout), not {self.readout!r}")
        prompts_hash(self.system_prompt, self.prompt)  # a missing prompt file fails here, before any work
        self.readout.validate(self)
        if self.tie_margin < 0 or self.max_tokens < 1:
            raise ValueError("tie_margin must be >= 0 and max_tokens >= 1")

    def prompt_hash(self, readout) -> str:
        """The prompt bytes behind a judgment with this (resolved) read-out (what a measurement is matched on)."""
        return prompts_hash(self.system_prompt, readout.prompt(self))

    def identity(self, ctx: JudgeContext) -> dict:
        readout = self.readout.resolve(ctx)
        return {"judge": type(self).__name__, "prompt_hash": self.prompt_hash(readout), **readout.identity()}

    # -- requests -----------------------------------------------------------------------------------------------
    def request(self, a: Record, b: Record, readout, seed: int) -> LLMRequest:
        ia, ib = clip(instruction_text(a), self.max_text_chars), clip(instruction_text(b), self.max_text_chars)
        ra, rb = clip(a.output, self.max_text_chars), clip(b.output, self.max_text_chars)
        fields = dict(instruction_1=ia, response_1=ra, instruction_2=ib, response_2=rb, question=ia, answer_1=ra,
                      answer_2=rb, lo=getattr(self.text_parser, "lo", ""), hi=getattr(self.text_parser, "hi", ""))
        user = render(read_prompt(readout.prompt(self)), **fields)
        return readout.request(self, user, seed, f"{a.id}|{b.id}", tag="pref:")

    def requests(self, pairs: Sequence[tuple[Record, Record]], ctx: JudgeContext) -> list[LLMRequest]:
        readout = self.readout.resolve(ctx)
        return [self.request(x, y, readout, ctx.seed) for a, b in pairs for x, y in ((a, b), (b, a))]

    # -- judging ------------------------------------------------------------------------------------------------
    def judge_pairs(self, pairs: Sequence[tuple[Record, Record]], ctx: JudgeContext) -> list[PairVerdict]:
        readout = self.readout.resolve(ctx)
        desc = f"{self.label_prefix or 'judge '}(pairwise, both orders{readout.describe})"
        results = ctx.run_llm(self.requests(pairs, ctx), readout.parser(self), desc=desc)
        return [readout.pair_verdict(self, a.id, b.id, results[2 * k], results[2 * k + 1])
                for k, (a, b) in enumerate(pairs)]

    # -- diagnostics --------------------------------------------------------------------------------------------
    def diagnostics(self, verdicts: Sequence[PairVerdict]) -> dict:
        """Position-bias diagnostics over the verdicts (each pair once). For log-probability read-outs the order
        agreement and first-position rate describe the raw per-order answers BEFORE the offset is cancelled: they are
        reported as raw_* (the gate's observed checks apply to text judgments, whose verdicts they are)."""
        views = [tuple({"first_won": o.first_won, "logit": o.logit, "answer_mass": o.answer_mass} for o in v.orders)
                 for v in verdicts if len(v.orders) == 2]
        stats = position_stats(views)
        if any(o.mode == "logprob" for v in verdicts for o in v.orders):
            for k in ("consistency", "first_position_win_rate"):
                stats[f"raw_{k}"] = stats.pop(k)
        return stats
