"""Scorers (config group `scorer`): a quality score for every clustered record.

    ContrastiveScorer  (pairwise.py) two records of a cluster judged together, both orders, Bradley-Terry
    SingleScorer       one record at a time (the wo_contrastive ablation; AlpaGasus-style 0-5 with its prompt)
    LengthScorer       response length in characters (no LLM)

A record that no valid judgment scored gets score None: it is excluded from selection and listed, never ranked
as if it had scored 0. A new scorer is one class with this protocol and one YAML file in conf/scorer/.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from tacos.data.formats import instruction_text
from tacos.llm.types import LLMRequest
from tacos.prompts import clip, prompts_hash, read_prompt, render
from tacos.records import Record


@dataclass
class ScoreOutput:
    rows: list[dict]  # scores.jsonl: {"id", "cluster", "score" (None: never validly judged), "raw_score", ...}
    judgments: list[dict] | None = None  # judgments.jsonl (pairwise scorers)
    counts: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    distributions: dict[str, list[float]] = field(default_factory=dict)  # for the histogram
    tables: dict[str, dict] = field(default_factory=dict)  # name -> {"columns", "data"}


class Scorer(Protocol):
    name: str
    uses_llm: bool
    pairwise: bool  # compares records (gated on pairwise suites) or grades one at a time (gated on ratings)

    def validate(self) -> None: ...
    def identity(self) -> dict: ...  # prompt hashes
    def requests(self, records: dict[str, Record], clusters: dict[int, list[str]], seed: int,
                 supports_logprobs: bool) -> list[LLMRequest]: ...  # the exact LLM work once the clusters exist
    def estimated_calls(self, n_records: int) -> int: ...  # before the clusters exist (dry runs)
    def sample_requests(self, pool: list[Record], seed: int,
                        supports_logprobs: bool) -> list[LLMRequest]: ...  # for the token estimate
    def score(self, records: dict[str, Record], clusters: dict[int, list[str]], llm, seed: int) -> ScoreOutput: ...


def score_schema(names: list[str], lo: float, hi: float) -> dict:
    # Small integer scales as enums: llama.cpp's grammar converter honours enum reliably.
    lo_i, hi_i = int(lo), int(hi)
    prop = {"type": "integer", "enum": list(range(lo_i, hi_i + 1))} if hi_i - lo_i <= 10 else \
        {"type": "integer", "minimum": lo_i, "maximum": hi_i}
    return {"type": "object", "properties": {n: prop for n in names}, "required": names}


def rounded(x):
    return None if x is None else round(float(x), 6)


@dataclass
class LLMScorerBase:
    """Prompt files, scale and decoding shared by the LLM scorers."""

    name: str = ""
    system_prompt: str = "score_system.txt"
    user_prompt: str = ""
    scale: list = field(default_factory=lambda: [1, 6])
    temperature: float = 0.0
    max_tokens: int = 48
    max_text_chars: int = 4000  # each instruction and response is clipped to this (head + tail) so prompts fit

    uses_llm = True

    def validate(self) -> None:
        self.prompt_hash()
        if len(self.scale) != 2 or self.scale[0] >= self.scale[1]:
            raise ValueError(f"scorer.scale must be [low, high] with low < high, got {self.scale}")

    def prompt_hash(self) -> str:
        return prompts_hash(self.system_prompt, self.user_prompt)

    def identity(self) -> dict:
        return {"prompt_hash": self.prompt_hash()}

    def text(self, r: Record) -> tuple[str, str]:
        return clip(instruction_text(r), self.max_text_chars), clip(r.output, self.max_text_chars)

    def chat(self, user: str, schema: dict | None, label: str, seed: int, *, prompt_hash: str | None = None,
             max_tokens: int | None = None, logprobs: int = 0, temperature: float | None = None) -> LLMRequest:
        return LLMRequest(messages=(("system", read_prompt(self.system_prompt).strip()), ("user", user)),
                          prompt_hash=prompt_hash or self.prompt_hash(),
                          temperature=self.temperature if temperature is None else temperature,
                          max_tokens=self.max_tokens if max_tokens is None else max_tokens, schema=schema,
                          seed=seed, logprobs=logprobs, label=label)


@dataclass
class SingleScorer(LLMScorerBase):
    """One record at a time. judgment=text: a JSON score; logprob: the expected score over the scale's digit tokens
    at the first answer position (one-token calls); auto: logprob where the endpoint returns log-probabilities."""

    name: str = "single"
    user_prompt: str = "score_single.txt"
    digit_prompt: str = "score_single_digit.txt"
    judgment: str = "text"
    max_tokens: int = 32
    top_logprobs: int = 10

    pairwise = False

    def validate(self) -> None:
        super().validate()
        if self.judgment not in ("text", "logprob", "auto"):
            raise ValueError(f"scorer.judgment must be text, logprob or auto, not {self.judgment!r}")
        if self.judgment != "text" and not (0 <= self.scale[0] and self.scale[1] <= 9):
            raise ValueError(f"scorer.judgment={self.judgment} reads one digit token: the scale must lie in 0-9, "
                             f"got {self.scale}")

    def identity(self) -> dict:
        return {"prompt_hash": self.prompt_hash(), "digit_prompt_hash": prompts_hash(self.system_prompt,
                                                                                      self.digit_prompt)}

    def mode(self, supports_logprobs: bool) -> str:
        return "logprob" if self.judgment == "logprob" or (self.judgment == "auto" and supports_logprobs) else "text"

    def judge_prompt_hash(self, mode: str) -> str:
        return prompts_hash(self.system_prompt, self.digit_prompt) if mode == "logprob" else self.prompt_hash()

    def request(self, r: Record, seed: int = 0, mode: str = "text") -> LLMRequest:
        lo, hi = self.scale
        instruction, response = self.text(r)
        if mode == "logprob":
            user = render(read_prompt(self.digit_prompt), instruction=instruction, response=response, lo=lo, hi=hi)
            return self.chat(user, None, f"digit:{r.id}", seed, temperature=0.0, max_tokens=1,
                             logprobs=self.top_logprobs, prompt_hash=prompts_hash(self.system_prompt,
                                                                                 self.digit_prompt))
        user = render(read_prompt(self.user_prompt), instruction=instruction, response=response, lo=lo, hi=hi)
        return self.chat(user, score_schema(["score"], lo, hi), r.id, seed)

    def parse(self, raw: str) -> float:
        from tacos.llm.parsing import parse_score

        return parse_score(raw, *self.scale)

    def value(self, result, mode: str) -> float | None:
        """The score a result gives, or None when it gives none (invalid)."""
        if result.status != "ok":
            return None
        if mode == "text":
            return result.parsed
        from tacos.method.scoring import expected_score, first_token_logprobs

        digits = {str(k): float(k) for k in range(int(self.scale[0]), int(self.scale[1]) + 1)}
        return expected_score(first_token_logprobs(result.logprobs), digits)

    def requests(self, records, clusters, seed: int = 0, supports_logprobs: bool = True) -> list[LLMRequest]:
        mode = self.mode(supports_logprobs)
        return [self.request(records[i], seed, mode) for i in _ids(clusters)]

    def estimated_calls(self, n_records: int) -> int:
        return n_records

    def sample_requests(self, pool: list[Record], seed: int = 0, supports_logprobs: bool = True) -> list[LLMRequest]:
        mode = self.mode(supports_logprobs)
        return [self.request(r, seed, mode) for r in pool[:20]]

    def score(self, records, clusters, llm, seed: int = 0) -> ScoreOutput:
        mode = self.mode(llm.supports_logprobs)
        ids = _ids(clusters)
        parser = self.parse if mode == "text" else (lambda raw: raw)
        results = llm.run([self.request(records[i], seed, mode) for i in ids], parser,
                          desc=f"score (single{', log-probabilities' if mode == 'logprob' else ''})")
        score = {i: self.value(res, mode) for i, res in zip(ids, results)}
        rows = [{"id": i, "cluster": c, "score": rounded(score[i]), "raw_score": rounded(score[i]), "ci_low": None,
                 "ci_high": None, "n_judgments": int(score[i] is not None)} for c in sorted(clusters) for i in clusters[c]]
        n_invalid = sum(1 for i in ids if score[i] is None)
        n_err = sum(1 for r in results if r.status == "error")
        counts = {"clusters": len(clusters), "llm_requests": len(ids), "invalid": n_invalid, "errors": n_err,
                  "scored": len(rows), "unscored": sum(1 for r in rows if r["score"] is None)}
        return ScoreOutput(rows, None, counts, {"judgment": mode, "invalid_rate": round(n_invalid / max(1, len(ids)), 4)},
                           {"score": [r["score"] for r in rows if r["score"] is not None]})


@dataclass
class LengthScorer:
    name: str = "length"

    uses_llm = False
    pairwise = False

    def validate(self) -> None:
        return None

    def identity(self) -> dict:
        return {}

    def requests(self, records, clusters, seed: int = 0, supports_logprobs: bool = True) -> list[LLMRequest]:
        return []

    def estimated_calls(self, n_records: int) -> int:
        return 0

    def sample_requests(self, pool, seed: int = 0, supports_logprobs: bool = True) -> list[LLMRequest]:
        return []

    def score(self, records, clusters, llm=None, seed: int = 0) -> ScoreOutput:
        rows = [{"id": i, "cluster": c, "score": float(len(records[i].output)),
                 "raw_score": float(len(records[i].output)), "ci_low": None, "ci_high": None, "n_judgments": 0}
                for c in sorted(clusters) for i in clusters[c]]
        return ScoreOutput(rows, None, {"scored": len(rows)}, {}, {"score": [r["score"] for r in rows]})


def _ids(clusters: dict[int, list[str]]) -> list[str]:
    return sorted({i for members in clusters.values() for i in members})


def pairs_estimate(n_records: int, rounds: int, orders: int) -> int:
    """Calls of a pairwise scorer before the clusters exist: ceil(n/2) pairs per round and order (assumes about
    one cluster membership per record after label-set dedup)."""
    return math.ceil(n_records / 2) * rounds * orders
