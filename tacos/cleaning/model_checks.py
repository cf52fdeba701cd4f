"""Model checks: defects a rule cannot see, asked of the run's LLM (tacos.cleaning; README "Cleaning").

    WrongAnswer   a short answer to a simple closed question ("What is the capital of Australia?" -> "Sydney"):
                  the LLM is asked "Is the proposed answer correct? yes/no" with the answer forced to one token
                  (a grammar where the endpoint takes one), and P(no) is read from the first position's
                  log-probabilities; the row is removed when P(no) >= `threshold`.

Only rows that `simple_question` selects are asked: a short knowledge question with a short answer, no passage to
read, no arithmetic (tacos.cleaning.arithmetic checks that exactly), no opinion, explanation or writing task. A row
whose answer cannot be read (no log-probabilities, neither token among them, a failed call) is KEPT, and the reason
is recorded (clean/unjudged.jsonl): a check that could not judge never removes.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

from tacos.cleaning.rules import short
from tacos.judges.readout import first_token_logprobs
from tacos.llm.calling.types import LLMRequest
from tacos.prompts import clip, prompts_hash, read_prompt, render
from tacos.records import Record

_I = re.IGNORECASE
_WORD = re.compile(r"\w+")
# A closed question about a fact: who/what/when/where/which/how many ..., "Name the ...", "What is the capital ...".
_ASKS = re.compile(r"^\s*(?:(?:please|can you|could you|tell me)[, ]+)?(?:who|whom|whose|what|when|where|which|"
                   r"how (?:many|much|long|far|old|tall|big|high|deep|fast)|(?:in|on|at|from|of|to|by) (?:what|which)|name (?:the|a|an|one)\b|"
                   r"identify the|give the name|state the|find the (?:name|capital|author|year|date|country|"
                   r"largest|smallest|longest|highest|chemical|boiling|freezing)|is |are |was |were |does |did |"
                   r"do |can |has |have )", _I)
# Open tasks that look like questions: opinions, explanations, advice, lists of ideas, writing, rewriting.
_OPEN = re.compile(r"\b(?:why|how (?:do|does|did|can|could|should|would|to|is|are)|describe|explain|discuss|"
                   r"write|generate|create|compose|suggest|recommend|imagine|opinion|think|feel|believe|best way|"
                   r"advice|tips?|ideas?|examples?|some|several|pros|cons|advantages?|disadvantages?|benefits?|"
                   r"differences?|compare|similarit\w*|summar\w*|rewrite|paraphrase|translate|edit|classify|"
                   r"categori[sz]e|rate|evaluate|analy[sz]e|predict|should|would|could|might|if you|your|you|"
                   r"story|poem|essay|slogan|tweet|sentence|paragraph|passage|text|article|following|given|above|"
                   r"below|this|these|word|synonym|antonym|rhymes?|adjective|verb|noun|code|function|program)\b", _I)
_ARITHMETIC = re.compile(r"\d\s*(?:[-+*/x×÷^%]|plus|minus|times|divided)\s*\(?\s*\d", _I)


def simple_question(instruction: str, input: str, output: str, max_question_words: int = 25,
                    max_answer_words: int = 40) -> bool:
    """A short closed question about a fact, with a short answer: what a small model can check."""
    if input.strip() or not output.strip():  # an input is material to work on (a passage, a list, a sentence)
        return False
    q = instruction.strip()
    if len(_WORD.findall(q)) > max_question_words or len(_WORD.findall(output)) > max_answer_words:
        return False
    if "\n" in q or not _ASKS.match(q) or _OPEN.search(q) or _ARITHMETIC.search(q):
        return False
    return True


def yes_no_probability(logprobs: list | None, yes: str = "yes", no: str = "no") -> tuple[float | None, float, str]:
    """(P(no) renormalised over yes + no, the mass on yes + no, why unreadable). Case and surrounding spaces do not
    matter ("Yes", " no"). Both answers must be among the reported log-probabilities: a missing one has an unknown
    probability, and the read-out is then invalid (None), never filled in."""
    top = first_token_logprobs(logprobs)
    if not top:
        return None, 0.0, "no log-probabilities in the answer"
    p_yes = sum(math.exp(lp) for t, lp in top.items() if t.lower() == yes)
    p_no = sum(math.exp(lp) for t, lp in top.items() if t.lower() == no)
    mass = p_yes + p_no
    if p_yes == 0.0 or p_no == 0.0:
        missing = [w for w, p in ((yes, p_yes), (no, p_no)) if p == 0.0]
        return None, round(mass, 6), f"{missing} not among the {len(top)} reported log-probabilities"
    return p_no / mass, round(mass, 6), ""


@dataclass
class WrongAnswer:
    """A wrong answer to a simple closed question (see the module docstring). `threshold` was set on the dev half of
    the hand-labelled questions (data/clean_eval/simple_questions.jsonl; measurements/bench_clean.py --real-model)."""

    name: str = "wrong_answer"
    threshold: float = 0.5  # P(no) at or above it: the answer is judged wrong and the row removed
    system_prompt: str = "clean_fact_system.txt"
    prompt: str = "clean_wrong_answer.txt"
    max_question_words: int = 25
    max_answer_words: int = 40
    top_logprobs: int = 10
    force_answer: bool = True  # a grammar allows only "yes" / "no" where the endpoint takes one
    max_text_chars: int = 1000

    uses_llm = True

    def validate(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"{self.name}.threshold must be in (0, 1], got {self.threshold}")
        prompts_hash(self.system_prompt, self.prompt)

    def identity(self) -> dict:
        """What its verdicts are a function of besides the code and the LLM: the prompt files' bytes."""
        return {"check": self.name, "prompt_hash": prompts_hash(self.system_prompt, self.prompt)}

    def selects(self, r: Record) -> bool:
        return simple_question(r.instruction, r.input, r.output, self.max_question_words, self.max_answer_words)

    def request(self, r: Record, seed: int) -> LLMRequest:
        user = render(read_prompt(self.prompt), question=clip(r.instruction.strip(), self.max_text_chars),
                      answer=clip(r.output.strip(), self.max_text_chars))
        return LLMRequest(messages=(("system", read_prompt(self.system_prompt).strip()), ("user", user)),
                          prompt_hash=prompts_hash(self.system_prompt, self.prompt), temperature=0.0, max_tokens=1,
                          seed=seed, logprobs=self.top_logprobs, label=f"{self.name}:{r.id}",
                          choices=("yes", "no") if self.force_answer else ())

    def requests(self, records: Sequence[Record], seed: int) -> list[LLMRequest]:
        """The calls `check` makes (for the dry-run forecast): one per selected row."""
        return [self.request(r, seed) for r in records if self.selects(r)]

    def check(self, records: Sequence[Record], ctx) -> dict[str, str]:
        asked = [r for r in records if self.selects(r)]
        results = ctx.run_llm([self.request(r, ctx.seed) for r in asked], lambda raw: raw, desc=f"clean ({self.name})")
        out = {}
        for r, res in zip(asked, results):
            if res.status != "ok":
                ctx.unjudged(self.name, r, f"LLM call {res.status}: {res.error or res.raw!r}")
                continue
            p_no, mass, why = yes_no_probability(res.logprobs)
            ctx.judged(self.name, r, p_wrong=None if p_no is None else round(p_no, 4), answer_mass=mass)
            if p_no is None:
                ctx.unjudged(self.name, r, f"answer not readable: {why}")
            elif p_no >= self.threshold:
                out[r.id] = f"the LLM judges the answer wrong (P(no) = {p_no:.2f} >= {self.threshold}): " \
                            f"{short(r.output, 50)!r}"
        return out
