"""FastChatSingleJudge: FastChat llm_judge's single-answer grader (MT-Bench), as a rating judge.

FastChat's rules, written once: which of its judge prompts grades a turn (`single-v1`, or the reference-guided
`single-math-v1` for NEED_REF_CATS, each with a `-multi-turn` variant for turn 2), the user message exactly as its
`run_judge_single` builds it (str.format of the template, GPT-4 reference answers where the prompt asks for them),
the prompt's own system message, and its rating rule: the first "[[x]]", else its backup pattern, the first "[x]"
(plus a 1-10 range check; anything else is re-asked by the client, then the rating is None: FastChat's -1).
The MT-Bench benchmark (tacos.benchmarks.mt_bench) decides what to grade and writes FastChat's judgment file.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from tacos.data.formats import instruction_text
from tacos.judges.base import JudgeContext, NoScreen, Rating
from tacos.llm.calling.parsing import ParseError, parse_rating_brackets
from tacos.llm.calling.types import LLMRequest
from tacos.records import Record, dumps

# FastChat llm_judge.common.NEED_REF_CATS: these categories are graded against GPT-4 reference answers.
NEED_REF_CATS = ("math", "reasoning", "coding", "arena-hard-200")
_DOUBLE_BRACKETS = re.compile(r"\[\[\s*-?\d")
_FASTCHAT_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")  # FastChat's one_score_pattern_backup


def parse_fastchat_rating(raw: str) -> float:
    """FastChat's rule: the first "[[x]]", else (its backup pattern) the first "[x]"; the rating must lie in 1-10.
    Anything else raises ParseError (the client re-asks, then the judgment is invalid: -1 in FastChat's file)."""
    if _DOUBLE_BRACKETS.search(raw):
        return parse_rating_brackets(raw, 1, 10)
    m = _FASTCHAT_BACKUP.search(raw)
    if m is None:
        raise ParseError(f"no [[rating]] or [rating] found in {raw[:120]!r}")
    rating = float(m.group(1))
    if not 1 <= rating <= 10:
        raise ParseError(f"rating {rating} is outside [1, 10] in {raw[:120]!r}")
    return rating


def prompt_name(category: str, turn: int) -> str:
    """Which FastChat judge prompt grades this turn: reference-guided for NEED_REF_CATS, multi-turn for turn 2."""
    if turn not in (1, 2):
        raise ValueError(f"MT-Bench turn must be 1 or 2, got {turn}")
    base = "single-math-v1" if category in NEED_REF_CATS else "single-v1"
    return base + ("-multi-turn" if turn == 2 else "")


def user_prompt(prompt: dict, questions: Sequence[str], answers: Sequence[str], reference: Sequence[str] | None,
                turn: int) -> str:
    """The judge's user message, built exactly as FastChat's `run_judge_single` (str.format of the template)."""
    kwargs = {}
    if reference is not None:
        kwargs["ref_answer_1"] = reference[0]
        if turn == 2:
            kwargs["ref_answer_2"] = reference[1]
    if turn == 2:
        return prompt["prompt_template"].format(question_1=questions[0], question_2=questions[1],
                                                answer_1=answers[0], answer_2=answers[1], **kwargs)
    return prompt["prompt_template"].format(question=questions[0], answer=answers[0], **kwargs)


@lru_cache(maxsize=8)
def _read_prompts(path: str, mtime_ns: int) -> dict[str, dict]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return {row["name"]: row for row in rows}


@dataclass(frozen=True)
class SingleAnswer:
    """One judgment to make: a question's turns, the answer's turns, the GPT-4 reference turns (or None), the turn
    graded (1 or 2) and the question's category (it picks the prompt)."""

    id: str
    category: str
    turn: int
    questions: tuple[str, ...]
    answers: tuple[str, ...]
    reference: tuple[str, ...] | None = None


@dataclass
class FastChatSingleJudge(NoScreen):
    """A RatingJudge on FastChat's 1-10 scale. `grade` takes MT-Bench turns (SingleAnswer); `rate` grades plain records
    as turn 1 with `single-v1` (so `tacos judge-eval --ratings F --judge benchmarks.mt_bench.judge` measures
    it)."""

    name: str = "fastchat_single"
    prompts_file: str = ""  # FastChat's judge_prompts.jsonl (data/mt_bench/judge_prompts.jsonl)
    temperature: float = 0.0
    max_tokens: int = 2048  # FastChat: 2048

    uses_llm = True

    def prompts(self) -> dict[str, dict]:
        p = Path(self.prompts_file)
        if not p.is_file():
            raise FileNotFoundError(f"FastChat judge prompts {p}: missing; rebuild data/ with "
                                    f"`python scripts/build_sample_data.py`")
        return _read_prompts(str(p), p.stat().st_mtime_ns)

    def validate(self) -> None:
        prompts = self.prompts()
        missing = [n for n in (prompt_name(c, t) for c in ("writing", "math") for t in (1, 2)) if n not in prompts]
        if missing:
            raise ValueError(f"{self.prompts_file} lacks the FastChat judge prompt(s) {missing}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")

    def identity(self, ctx: JudgeContext) -> dict:
        digest = hashlib.sha256(Path(self.prompts_file).read_bytes()).hexdigest()
        return {"judge": type(self).__name__, "prompts_sha256": digest, "temperature": float(self.temperature),
                "max_tokens": int(self.max_tokens)}

    def request(self, item: SingleAnswer, seed: int) -> LLMRequest:
        name = prompt_name(item.category, item.turn)
        needs_reference = item.category in NEED_REF_CATS
        if needs_reference and item.reference is None:
            raise ValueError(f"{item.id}: a {item.category} question is graded against its GPT-4 reference answer, "
                             f"and it has none")
        prompt = self.prompts()[name]
        user = user_prompt(prompt, item.questions, item.answers, item.reference if needs_reference else None,
                           item.turn)
        # The cache key holds the prompt's own JSON (not the whole file): editing one prompt re-asks its calls only.
        return LLMRequest(messages=(("system", prompt["system_prompt"]), ("user", user)),
                          prompt_hash=hashlib.sha256(dumps(prompt).encode("utf-8")).hexdigest(),
                          temperature=self.temperature, max_tokens=self.max_tokens, seed=seed, label=item.id)

    def requests(self, records: Sequence[Record], ctx: JudgeContext) -> list[LLMRequest]:
        return self.answer_requests([_single(r) for r in records], ctx)

    def answer_requests(self, items: Sequence[SingleAnswer], ctx: JudgeContext) -> list[LLMRequest]:
        return [self.request(i, ctx.seed) for i in items]

    def grade(self, items: Sequence[SingleAnswer], ctx: JudgeContext) -> list[Rating]:
        """One Rating per item; `detail` keeps what FastChat's judgment row needs: prompt name, user prompt, the
        judge's text (None when the call failed), status, cache key and the time the call was answered."""
        requests = self.answer_requests(items, ctx)
        results = ctx.run_llm(requests, parse_fastchat_rating, desc="judge (MT-Bench single)")
        out = []
        for item, req, res in zip(items, requests, results):
            entry = ctx.cache.get(res.key) if ctx.cache is not None else None  # stable when a re-run reads the cache
            detail = {"prompt_name": prompt_name(item.category, item.turn), "user_prompt": req.messages[1][1],
                      "raw": res.raw, "status": res.status, "cache_key": res.key,
                      "tstamp": entry["created_at"] if entry else None}
            ok = res.status == "ok"
            out.append(Rating(item.id, float(res.parsed) if ok else None, detail,
                              "" if ok else f"{res.status} judge answer"))
        return out

    def rate(self, records: Sequence[Record], ctx: JudgeContext) -> list[Rating]:
        return self.grade([_single(r) for r in records], ctx)


def _single(r: Record) -> SingleAnswer:
    """A record as a first-turn answer with no category (graded with single-v1)."""
    return SingleAnswer(r.id, "", 1, (instruction_text(r),), (r.output,))
