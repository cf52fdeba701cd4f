"""The values that cross the LLM layer's boundary: a request, its result, and the call counters.

Stages and strategies build `LLMRequest`s and read `LLMResult`s; only `tacos.llm.calling.client` talks to a backend.
This module imports nothing from the rest of the package, so every layer may depend on it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal

# How a call ended: "ok" (parsed), "invalid" (answered but unparsable after the parse retries; raw text kept,
# never a default value) or "error" (the backend did not answer usefully after the transport retries; not cached).
STATUSES = ("ok", "invalid", "error")


@dataclass(frozen=True)
class LLMRequest:
    """One chat call. Everything but `label` goes into the cache key."""

    messages: tuple[tuple[str, str], ...]  # ((role, content), ...)
    prompt_hash: str  # sha256 of the prompt file(s) used, so editing a prompt invalidates its calls
    temperature: float = 0.0
    max_tokens: int = 512
    top_p: float = 1.0
    seed: int | None = 0
    schema: dict | None = None  # JSON schema for constrained output
    logprobs: int = 0  # >0: ask for top_logprobs=N when the endpoint supports logprobs
    label: str = ""  # free text for logs
    # The answer must be one of these strings (a one-token read-out): sent as a grammar where the endpoint takes one
    # (Endpoint.grammar), otherwise only the prompt asks for it. Part of the cache key when set.
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        messages = tuple(tuple(m) for m in self.messages)  # accept lists (e.g. from JSON)
        for m in messages:
            if len(m) != 2 or not all(isinstance(part, str) for part in m):
                raise ValueError(f"each message must be a (role, content) pair of strings, got {m!r}")
        if not messages:
            raise ValueError("LLMRequest needs at least one message")
        if not self.prompt_hash:
            raise ValueError("LLMRequest.prompt_hash is required: the sha256 of the prompt file(s) used")
        object.__setattr__(self, "messages", messages)
        object.__setattr__(self, "choices", tuple(str(c) for c in self.choices))

    def params(self) -> dict:
        # float()/int() so that 0 and 0.0 give the same key
        return {"temperature": float(self.temperature), "max_tokens": int(self.max_tokens),
                "top_p": float(self.top_p), "seed": self.seed}

    def to_json(self) -> dict:
        out = {"messages": [list(m) for m in self.messages], "prompt_hash": self.prompt_hash, **self.params(),
               "schema": self.schema, "logprobs": self.logprobs, "label": self.label}
        return {**out, "choices": list(self.choices)} if self.choices else out

    def key(self, identity: str) -> str:
        payload = {"identity": identity, "prompt_hash": self.prompt_hash,
                   "messages": [list(m) for m in self.messages], "params": self.params(),
                   "schema": self.schema, "logprobs": int(self.logprobs)}
        if self.choices:  # absent otherwise, so the keys of every earlier call stay what they were
            payload["choices"] = list(self.choices)
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class LLMResult:
    key: str
    status: str  # "ok" | "invalid" (parse failed after retries; raw kept) | "error" (transport failed after retries)
    raw: str | None
    parsed: Any
    attempts: int  # HTTP requests sent for this call (transport and parse retries included)
    prompt_tokens: int  # summed over every response received for this call (what was billed)
    completion_tokens: int
    cached: bool
    error: str | None = None
    logprobs: list | None = None  # per generated token: {"token", "logprob", "top_logprobs": [{"token", "logprob"}]}
    finish_reason: str | None = None  # of the last generation: "stop", or "length" when cut at max_tokens
    latency_s: float | None = None  # wall time of the call when it was made (kept in the cache)


@dataclass
class CallStats:
    """Counters. ok/invalid/errors/cache_hits count every result returned (cached or not); calls,
    backend_requests, retries, tokens, cost and seconds count fresh work only. Snapshot with
    `dataclasses.replace(client.stats)` and subtract to get a stage's own share."""

    calls: int = 0  # logical calls not served by cache
    backend_requests: int = 0  # HTTP requests actually sent (incl. retries)
    cache_hits: int = 0
    ok: int = 0
    invalid: int = 0
    errors: int = 0
    retries: int = 0  # backend_requests beyond the first of each call
    truncated: int = 0  # replies cut at max_tokens > 1 (finish_reason "length"), retries included
    too_long: int = 0  # calls whose prompt did not fit the model's context (recorded invalid, never sent again)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0

    def _combine(self, other: "CallStats", sign: int) -> "CallStats":
        return CallStats(**{f.name: getattr(self, f.name) + sign * getattr(other, f.name) for f in fields(self)})

    def __add__(self, other: "CallStats") -> "CallStats":
        return self._combine(other, 1)

    def __sub__(self, other: "CallStats") -> "CallStats":
        return self._combine(other, -1)




class LLMUnavailable(RuntimeError):
    """The endpoint refuses every call (bad key, no permission, unknown model or URL): the stage stops at once."""


class LLMCallsFailed(RuntimeError):
    """More calls than `client.max_error_rate` allows ended in transport errors after every retry."""


# How the backend accepts constrained JSON:
#   llama_cpp    -> response_format={"type": "json_object", "schema": {...}}   (llama-cpp-python extension)
#   json_schema  -> response_format={"type": "json_schema", "json_schema": {...}} (OpenAI, vLLM)
#   json_object  -> response_format={"type": "json_object"} (schema only in the prompt)
#   none         -> nothing; the parser alone validates
StructuredOutput = Literal["llama_cpp", "json_schema", "json_object", "none"]


@dataclass(frozen=True)
class Endpoint:
    """A reachable OpenAI-compatible chat endpoint.

    `model` is what is sent in the request; `identity` is what goes into cache keys (for a local
    GGUF: name + sha256), so a changing port or alias never invalidates the cache while a
    different model always does. The API key is never stored here: only the *name* of the
    environment variable that holds it.
    """

    base_url: str
    model: str
    identity: str
    api_key_env: str | None = None
    structured_output: StructuredOutput = "none"
    supports_logprobs: bool = False
    # USD per 1M tokens; 0 for local models.
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    max_concurrency: int = 1
    extra_body: dict = field(default_factory=dict)
    grammar: bool = False  # takes a GBNF `grammar` field (llama.cpp's server, llama-cpp-python): answers can be forced

    def api_key(self) -> str:
        import os

        if not self.api_key_env:
            return "EMPTY"
        key = os.environ.get(self.api_key_env)
        if not key:
            raise RuntimeError(
                f"environment variable {self.api_key_env} is not set: the endpoint {self.base_url} needs an API key "
                f"(keys are read from the environment only, never from config files)")
        return key
