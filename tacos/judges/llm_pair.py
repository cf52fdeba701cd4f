"""LLMPairJudge: an LLM shown two records side by side, every pair in both presentation orders.

Two read-outs (`judgment`):
  text     the answer holds two scores (the `text_parser`: JSON 1-6 for data scoring, "8 7" on the first line for the
           judge stage); each order gives a verdict, the two combine by the reference rule (tacos.judges.orders).
  logprob  a one-token answer ("1" or "2"), forced where the endpoint takes a grammar and optionally prefilled;
           P(first better) is read over the two answer tokens only (tacos.judges.readout) in both orders and the
           position pull cancels exactly. A missing answer token makes the order invalid, never a floor value.
  auto     logprob where the endpoint returns log-probabilities, else text.
The same class judges data records (score stage: two instructions, `score_pair*.txt`) and model answers (judge
stage: one question, `judge_pairwise.txt`): the prompt is rendered with instruction_i / response_i and with
question / answer_i, so either kind of template works.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from tacos.data.formats import instruction_text
from tacos.judges.base import JudgeContext, NoScreen, PairVerdict
from tacos.judges.orders import FLIP, P_OF, combine, debias, position_stats, text_outcome, verdict
from tacos.judges.parsers import JsonScorePair
from tacos.judges.readout import preference_logit, read_answer
from tacos.llm.types import LLMRequest
from tacos.prompts import clip, prompts_hash, read_prompt, render
from tacos.records import Record

JUDGMENTS = ("text", "logprob", "auto")
ANSWERS = ("1", "2")


@dataclass
class LLMPairJudge(NoScreen):
    name: str = "llm_pair"
    system_prompt: str = "score_system.txt"
    prompt: str = "score_pair.txt"  # text judgments
    preference_prompt: str = "score_pair_preference.txt"  # logprob judgments: answer "1" or "2"
    judgment: str = "auto"
    text_parser: Any = field(default_factory=JsonScorePair)
    tie_margin: float = 0.0  # text judgments: score differences up to this are ties
    top_logprobs: int = 10
    force_answer: bool = True  # logprob judgments: a grammar allows only "1" / "2" where the endpoint takes one
    prefill: str = ""  # logprob judgments: the assistant turn starts with this text (llama.cpp continues it)
    max_text_chars: int = 4000  # each instruction and response is clipped (head + tail, marked) so two fit
    temperature: float = 0.0
    max_tokens: int = 48  # text judgments
    label_prefix: str = ""  # request labels (logs only)

    uses_llm = True

    def validate(self) -> None:
        if self.judgment not in JUDGMENTS:
            raise ValueError(f"judgment must be one of {JUDGMENTS}, not {self.judgment!r}")
        prompts_hash(self.system_prompt, self.prompt)  # a missing prompt file fails here, before any work
        if self.judgment != "text":
            prompts_hash(self.system_prompt, self.preference_prompt)
        if self.tie_margin < 0 or self.max_tokens < 1 or self.top_logprobs < 2:
            raise ValueError("tie_margin must be >= 0, max_tokens >= 1 and top_logprobs >= 2")

    def mode(self, ctx: JudgeContext) -> str:
        return "logprob" if self.judgment == "logprob" or (self.judgment == "auto" and ctx.supports_logprobs) \
            else "text"

    def prompt_hash(self, mode: str) -> str:
        """The prompt bytes behind a judgment in `mode` (what a measurement of this judge is matched on)."""
        return prompts_hash(self.system_prompt, self.preference_prompt if mode == "logprob" else self.prompt)

    def identity(self, ctx: JudgeContext) -> dict:
        mode = self.mode(ctx)
        out = {"judge": type(self).__name__, "mode": mode, "prompt_hash": self.prompt_hash(mode)}
        if mode == "logprob":
            out.update(force_answer=self.force_answer, prefill=self.prefill)
        return out

    # -- requests -----------------------------------------------------------------------------------------------
    def request(self, a: Record, b: Record, mode: str, seed: int) -> LLMRequest:
        ia, ib = clip(instruction_text(a), self.max_text_chars), clip(instruction_text(b), self.max_text_chars)
        ra, rb = clip(a.output, self.max_text_chars), clip(b.output, self.max_text_chars)
        fields = dict(instruction_1=ia, response_1=ra, instruction_2=ib, response_2=rb, question=ia, answer_1=ra,
                      answer_2=rb, lo=getattr(self.text_parser, "lo", ""), hi=getattr(self.text_parser, "hi", ""))
        system = ("system", read_prompt(self.system_prompt).strip())
        if mode == "logprob":
            messages = (system, ("user", render(read_prompt(self.preference_prompt), **fields)))
            if self.prefill:
                messages += (("assistant", self.prefill),)
            return LLMRequest(messages=messages, prompt_hash=self.prompt_hash(mode), temperature=0.0, max_tokens=1,
                              seed=seed, logprobs=self.top_logprobs, label=f"{self.label_prefix}pref:{a.id}|{b.id}",
                              choices=ANSWERS if self.force_answer else ())
        return LLMRequest(messages=(system, ("user", render(read_prompt(self.prompt), **fields))),
                          prompt_hash=self.prompt_hash(mode), temperature=self.temperature,
                          max_tokens=self.max_tokens, schema=self.text_parser.schema(), seed=seed,
                          label=f"{self.label_prefix}{a.id}|{b.id}")

    def requests(self, pairs: Sequence[tuple[Record, Record]], ctx: JudgeContext) -> list[LLMRequest]:
        mode = self.mode(ctx)
        return [self.request(x, y, mode, ctx.seed) for a, b in pairs for x, y in ((a, b), (b, a))]

    # -- judging ------------------------------------------------------------------------------------------------
    def judge_pairs(self, pairs: Sequence[tuple[Record, Record]], ctx: JudgeContext) -> list[PairVerdict]:
        mode = self.mode(ctx)
        parser = (lambda raw: raw) if mode == "logprob" else self.text_parser.parse
        desc = f"{self.label_prefix or 'judge '}(pairwise, both orders{', log-probabilities' if mode == 'logprob' else ''})"
        results = ctx.run_llm(self.requests(pairs, ctx), parser, desc=desc)
        read = self._logprob_verdict if mode == "logprob" else self._text_verdict
        return [read(a, b, results[2 * k], results[2 * k + 1]) for k, (a, b) in enumerate(pairs)]

    def _order(self, first: str, second: str, res) -> dict:
        return {"first": first, "second": second, "status": res.status, "raw": res.raw, "cached": res.cached,
                "cache_key": res.key}

    def _text_verdict(self, a: Record, b: Record, ab, ba) -> PairVerdict:
        orders, sides, comparisons = [], [], []
        for first, second, res in ((a.id, b.id, ab), (b.id, a.id, ba)):
            s1, s2 = res.parsed if res.status == "ok" else (None, None)
            orders.append({**self._order(first, second, res), "score_first": s1, "score_second": s2})
            if s1 is None:
                sides.append(None)
                continue
            comparisons.append((first, second, text_outcome(s1, s2, self.tie_margin)))
            v = verdict(s1, s2, self.tie_margin)
            sides.append(v if first == a.id else FLIP[v])  # read from a's side in both orders
        combined = combine(*sides)
        points = tuple(p for o in orders if o["score_first"] is not None
                       for p in ((o["first"], o["score_first"]), (o["second"], o["score_second"])))
        return PairVerdict(a.id, b.id, None if combined is None else P_OF[combined], tuple(comparisons),
                           tuple(orders), "" if combined is not None else "an order has no valid answer", points)

    def _logprob_verdict(self, a: Record, b: Record, ab, ba) -> PairVerdict:
        orders, logits = [], []
        for first, second, res in ((a.id, b.id, ab), (b.id, a.id, ba)):
            r = read_answer(res.logprobs, ANSWERS) if res.status == "ok" else None
            logit = preference_logit(r) if r is not None else None
            logits.append(logit)
            orders.append({**self._order(first, second, res), "logit": None if logit is None else round(logit, 6),
                           "answer_mass": None if r is None else r.mass,
                           "problem": (res.error or res.status) if r is None else r.reason})
        if None in logits:
            return PairVerdict(a.id, b.id, None, (), tuple(orders), "; ".join(o["problem"] for o in orders
                                                                              if o["problem"]))
        p, _ = debias(*logits)
        return PairVerdict(a.id, b.id, p, ((a.id, b.id, p),), tuple(orders), points=((a.id, p), (b.id, 1.0 - p)))

    # -- diagnostics --------------------------------------------------------------------------------------------
    def diagnostics(self, verdicts: Sequence[PairVerdict]) -> dict:
        """Position-bias diagnostics over the verdicts (each pair once). For log-probability read-outs the order
        agreement and first-position rate describe the raw per-order answers BEFORE the offset is cancelled: they are
        reported as raw_* (the gate's observed checks apply to text judgments, whose verdicts they are)."""
        views, logprob = [], False
        for v in verdicts:
            pair = []
            for o in v.orders:
                if "logit" in o:
                    logprob = True
                    won = None if o["logit"] is None or o["logit"] == 0 else o["logit"] > 0
                    pair.append({"first_won": won, "logit": o["logit"], "answer_mass": o["answer_mass"]})
                else:
                    s1, s2 = o["score_first"], o["score_second"]
                    won = None if s1 is None or s1 == s2 else s1 > s2
                    pair.append({"first_won": won})
            if len(pair) == 2:
                views.append(tuple(pair))
        stats = position_stats(views)
        if logprob:
            for k in ("consistency", "first_position_win_rate"):
                stats[f"raw_{k}"] = stats.pop(k)
        return stats
