"""Log-probabilities of GIVEN text: the likelihood signals' way to a language model (no generation).

A chat endpoint only scores what it generates; the relevance signals need log P(response | instruction) of a response
that already exists (Cherry LLM's IFD, Superfiltering, the instruction-conditioned likelihood gain). So a span request
asks a scoring model for the log-probability of every token of `target` after `context` (and, optionally, of the
end-of-turn token after it: how sure the model is that the response is complete).

    lm = TransformersLM("qwen2.5-coder-0.5b")                 # tacos.llm.likelihoods.transformers_lm (CPU torch, in process)
    with LikelihoodClient(lm, CallCache(cache_dir)) as client:
        [res] = client.run([SpanRequest(context=lm.chat_prefix("Name a colour."), target="Blue.")])
        res.mean_logprob, res.end_logprob

Backends (`lm` config group, each a `_target_`): TransformersLM (the embedded default: the bundled GGUF converted once
to a transformers checkpoint), CompletionsEchoLM (an OpenAI-compatible /v1/completions endpoint that echoes prompt
log-probabilities, e.g. vLLM). Results are cached in the same SQLite call cache as the chat calls, keyed by the
backend's identity and the exact texts, so a re-run computes nothing. Why not the chat client: llama.cpp's server
returns log-probabilities of generated tokens only (no `echo`), so these calls cannot go to the chat endpoint.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from tqdm.auto import tqdm

from tacos.llm.calling.types import CallStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpanRequest:
    """Score `target` after `context` (the full text is context + target); `end`: also score the model's end-of-turn
    token right after the target."""

    context: str
    target: str
    end: bool = True
    label: str = ""

    def key(self, identity: str, max_target_tokens: int) -> str:
        payload = {"kind": "span_logprobs", "identity": identity, "context": self.context, "target": self.target,
                   "end": self.end, "max_target_tokens": int(max_target_tokens)}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class SpanResult:
    """Per-token log-probabilities of the target (clipped to the backend's max_target_tokens) and of the end token."""

    key: str
    token_logprobs: list[float]
    end_logprob: float | None
    truncated: bool  # the target had more tokens than were scored
    cached: bool = False
    latency_s: float | None = None

    @property
    def n_tokens(self) -> int:
        return len(self.token_logprobs)

    @property
    def mean_logprob(self) -> float | None:
        """Mean log-probability per target token (None for an empty target)."""
        return sum(self.token_logprobs) / len(self.token_logprobs) if self.token_logprobs else None


class ScoringLM(Protocol):
    """A model that returns log-probabilities of given tokens."""

    identity: str  # model + weights hash + numerics: what a cached value is a function of
    max_target_tokens: int

    def validate(self) -> None: ...
    def chat_prefix(self, user: str) -> str: ...  # the text before an assistant turn answering `user`
    def bare_prefix(self) -> str: ...  # the text before an assistant turn with no instruction at all
    def score(self, requests: Sequence[SpanRequest]) -> list[tuple[list[float], float | None, bool]]: ...
    def close(self) -> None: ...


@dataclass
class LikelihoodClient:
    """Cache first, then the backend in batches; counts what it did like the chat client (CallStats)."""

    lm: ScoringLM
    cache: object  # tacos.llm.calling.cache.CallCache
    batch_size: int = 8
    progress: bool = True
    stats: CallStats = field(default_factory=CallStats)

    def run(self, requests: Sequence[SpanRequest], desc: str = "log-probabilities") -> list[SpanResult]:
        keys = [r.key(self.lm.identity, self.lm.max_target_tokens) for r in requests]
        done: dict[str, SpanResult] = {}
        todo: dict[str, SpanRequest] = {}
        for request, key in zip(requests, keys):
            if key in done or key in todo:
                continue
            entry = self.cache.get(key)
            if entry is not None and entry["status"] == "ok":
                p = entry["parsed"]
                done[key] = SpanResult(key, p["token_logprobs"], p["end_logprob"], p["truncated"], cached=True,
                                       latency_s=entry.get("latency_s"))
            else:
                todo[key] = request
        self.stats.cache_hits += len(done)
        items = list(todo.items())
        started = time.monotonic()
        with tqdm(total=len(items), desc=desc, unit="text", disable=not self.progress or not items,
                  dynamic_ncols=True) as bar:
            for i in range(0, len(items), self.batch_size):
                batch = items[i:i + self.batch_size]
                t0 = time.monotonic()
                scored = self.lm.score([r for _, r in batch])
                latency = round((time.monotonic() - t0) / len(batch), 4)
                for (key, request), (lps, end, truncated) in zip(batch, scored):
                    lps = [round(float(x), 5) for x in lps]
                    end = None if end is None else round(float(end), 5)
                    self.cache.put(key, identity=self.lm.identity, prompt_hash="span_logprobs",
                                   request={"context": request.context, "target": request.target, "end": request.end,
                                            "label": request.label},
                                   raw=None, parsed={"token_logprobs": lps, "end_logprob": end, "truncated": truncated},
                                   status="ok", error=None, attempts=1, prompt_tokens=len(lps), completion_tokens=0,
                                   logprobs=None, latency_s=latency)
                    done[key] = SpanResult(key, lps, end, truncated, cached=False, latency_s=latency)
                    self.stats.calls += 1
                    self.stats.ok += 1
                    self.stats.prompt_tokens += len(lps)
                bar.update(len(batch))
        self.stats.seconds += time.monotonic() - started
        return [done[k] for k in keys]

    def close(self) -> None:
        self.lm.close()

    def __enter__(self) -> "LikelihoodClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
