"""The one LLM client every stage uses: cache first, bounded concurrency, retries, structured output, budget.

    client = LLMClient(endpoint, CallCache(cache_dir), CostLedger(max_usd=5.0))
    results = client.run(requests, parser=parse_score_pair_0_100, desc="score")   # input order

Several endpoints (replicas of ONE model, same `identity`, so the same cache keys):
    client = LLMClient([endpoint_a, endpoint_b], cache, ledger)
Each endpoint has its own `max_concurrency` slots and its own HTTP client. Every request goes to the endpoint
with the most free slots (ties: round robin), so a slow replica gets fewer calls; an endpoint whose last request
failed is used only when no healthy one has a free slot, and a transport retry goes to another endpoint than the
one(s) that already failed for this call when there is one. Requests and failures are counted per endpoint
(`calls_per_endpoint`, `failures_per_endpoint`, keyed by base_url).

Retries, two kinds:
  * transport: 408/409/429, 5xx, timeouts, connection errors and unusable bodies (not JSON, truncated,
    no choices) are retried with exponential backoff and jitter, up to `max_retries` times; other 4xx fail
    at once. A call that still fails is status "error" and is NOT cached, so a re-run retries it.
  * parse: when `parser(raw)` raises ParseError the call is regenerated up to `parse_retries` more times.
    Greedy decoding would repeat the same answer, so generation g > 0 uses seed + g and a temperature of
    at least RETRY_MIN_TEMPERATURE. Still unparsable: status "invalid", raw kept, parsed None, cached as
    invalid (re-issued only with retry_invalid=True). Never a silent default value.

`parsed` is always the JSON round trip of the parser's value (tuples become lists), so a result served
from the cache equals the fresh one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Sequence

import openai
from tqdm.auto import tqdm

from tacos.llm.cache import CallCache
from tacos.llm.endpoint import Endpoint
from tacos.llm.ledger import BudgetExceeded, CostLedger, usd
from tacos.llm.parsing import ParseError

__all__ = ["BudgetExceeded", "CallStats", "LLMClient", "LLMRequest", "LLMResult", "ParseError",
           "RETRY_MIN_TEMPERATURE"]

log = logging.getLogger(__name__)

RETRY_MIN_TEMPERATURE = 0.7
_RETRY_STATUS = {408, 409, 429}  # plus every 5xx; the same set the openai SDK itself retries
_STATUS_COUNTER = {"ok": "ok", "invalid": "invalid", "error": "errors"}  # LLMResult.status -> CallStats field


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

    def params(self) -> dict:
        # float()/int() so that 0 and 0.0 give the same key
        return {"temperature": float(self.temperature), "max_tokens": int(self.max_tokens),
                "top_p": float(self.top_p), "seed": self.seed}

    def to_json(self) -> dict:
        return {"messages": [list(m) for m in self.messages], "prompt_hash": self.prompt_hash, **self.params(),
                "schema": self.schema, "logprobs": self.logprobs, "label": self.label}

    def key(self, identity: str) -> str:
        payload = {"identity": identity, "prompt_hash": self.prompt_hash,
                   "messages": [list(m) for m in self.messages], "params": self.params(),
                   "schema": self.schema, "logprobs": int(self.logprobs)}
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


@dataclass
class _Reply:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    logprobs: list | None


class _MalformedResponse(Exception):
    """HTTP 200 but not a usable chat completion (not JSON, no choices): retried like a transport error."""


class _CallFailed(Exception):
    def __init__(self, message: str, sent: int):
        super().__init__(message)
        self.message = message
        self.sent = sent  # HTTP requests sent before giving up


def _response_format(mode: str, schema: dict) -> dict | None:
    if mode == "llama_cpp":
        return {"type": "json_object", "schema": schema}
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": False}}
    if mode == "json_object":
        return {"type": "json_object"}
    if mode == "none":
        return None
    raise ValueError(f"unknown structured_output mode {mode!r} (llama_cpp | json_schema | json_object | none)")


def _read_reply(resp: Any) -> _Reply:
    if isinstance(resp, str):  # the SDK hands back the text when the body is not JSON
        raise _MalformedResponse(f"response body is not JSON: {resp[:120]!r}")
    choices = getattr(resp, "choices", None)
    if not choices or getattr(choices[0], "message", None) is None:
        raise _MalformedResponse("response has no choices[0].message")
    text = choices[0].message.content
    if text is not None and not isinstance(text, str):
        raise _MalformedResponse(f"message content is {type(text).__name__}, not text")
    usage = getattr(resp, "usage", None)
    lp = getattr(choices[0], "logprobs", None)
    logprobs = None
    if lp is not None and getattr(lp, "content", None) is not None:
        logprobs = [{"token": t.token, "logprob": t.logprob,
                     "top_logprobs": [{"token": a.token, "logprob": a.logprob} for a in (t.top_logprobs or [])]}
                    for t in lp.content]
    return _Reply(text=text or "", logprobs=logprobs,
                  prompt_tokens=getattr(usage, "prompt_tokens", None),
                  completion_tokens=getattr(usage, "completion_tokens", None))


def _json_roundtrip(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise TypeError(f"the parser must return a JSON-serialisable value (it is cached), got {value!r}: {e}") from e


def _split(total: int, weights: Sequence[int]) -> list[int]:
    """`total` slots over endpoints in proportion to `weights` (largest remainder), at least 1 each."""
    weights = [max(1, w) for w in weights]
    if total <= len(weights):
        return [1] * len(weights)
    shares = [total * w / sum(weights) for w in weights]
    out = [max(1, int(s)) for s in shares]
    by_remainder = sorted(range(len(weights)), key=lambda i: (out[i] - shares[i], i))
    i = 0
    while sum(out) < total:
        out[by_remainder[i % len(out)]] += 1
        i += 1
    while sum(out) > total:  # only when the max(1, .) floor pushed it over
        j = max((k for k in range(len(out)) if out[k] > 1), key=lambda k: (out[k] - shares[k], out[k]))
        out[j] -= 1
    return out


class _Slots:
    """Per-endpoint concurrency: acquire() blocks until the best allowed endpoint has a free slot."""

    def __init__(self, limits: list[int]):
        self.limits = limits
        self.in_flight = [0] * len(limits)
        self.failing = [False] * len(limits)  # the last request to it failed in transport
        self._next = 0  # round-robin pointer for ties
        self._cond = threading.Condition()

    def acquire(self, avoid: set[int]) -> int:
        """A slot on the endpoint with the most free slots, skipping `avoid` (endpoints that already failed for
        this call) unless every endpoint is in it; failing endpoints only when no healthy one has a free slot."""
        n = len(self.limits)
        allowed = [i for i in range(n) if i not in avoid] or list(range(n))
        with self._cond:
            while True:
                free = {i: self.limits[i] - self.in_flight[i] for i in allowed if self.in_flight[i] < self.limits[i]}
                if free:
                    healthy = {i: f for i, f in free.items() if not self.failing[i]} or free
                    best = max(healthy.values())
                    # ties: the first candidate at or after the round-robin pointer
                    chosen = min((i for i, f in healthy.items() if f == best), key=lambda i: (i - self._next) % n)
                    self._next = (chosen + 1) % n
                    self.in_flight[chosen] += 1
                    return chosen
                self._cond.wait()

    def release(self, index: int, failed: bool) -> None:
        with self._cond:
            self.in_flight[index] -= 1
            self.failing[index] = failed
            self._cond.notify_all()


class LLMClient:
    def __init__(self, endpoint: Endpoint | Sequence[Endpoint], cache: CallCache, ledger: CostLedger | None = None,
                 *, max_concurrency: int | None = None, max_retries: int = 5, backoff_base: float = 1.0,
                 backoff_max: float = 30.0, timeout: float = 300.0, parse_retries: int = 2,
                 retry_invalid: bool = False, progress: bool = True):
        endpoints = [endpoint] if isinstance(endpoint, Endpoint) else list(endpoint)
        if not endpoints:
            raise ValueError("LLMClient needs at least one endpoint")
        identities = sorted({ep.identity for ep in endpoints})
        if len(identities) > 1:
            raise ValueError(
                f"all endpoints of one LLMClient must serve the same model (one identity, so one set of cache "
                f"keys); got identities {identities} from {[ep.base_url for ep in endpoints]}")
        for ep in endpoints:
            _response_format(ep.structured_output, {})  # fail fast on an unknown mode
        self.endpoints = endpoints
        self.endpoint = endpoints[0]  # identity, prices and cost estimates: the same for every endpoint
        self.cache = cache
        self.ledger = ledger if ledger is not None else CostLedger()
        own_limits = [max(1, ep.max_concurrency) for ep in endpoints]
        if max_concurrency:
            limits = _split(max(1, max_concurrency), own_limits)
            self.max_concurrency = max(1, min(max_concurrency, sum(limits)))
        else:
            limits = own_limits
            self.max_concurrency = sum(limits)
        self.endpoint_limits = limits
        self._slots = _Slots(limits)
        self.calls_per_endpoint: dict[str, int] = {ep.base_url: 0 for ep in endpoints}  # HTTP requests sent
        self.failures_per_endpoint: dict[str, int] = {ep.base_url: 0 for ep in endpoints}  # transport failures
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.parse_retries = parse_retries
        self.retry_invalid = retry_invalid
        self.progress = progress
        self.stats = CallStats()
        self._stats_lock = threading.Lock()
        self._warned_logprobs = False
        # max_retries=0: the SDK must not retry behind our back; retries, backoff and counting are ours.
        self._apis = [openai.OpenAI(base_url=ep.base_url, api_key=ep.api_key(), max_retries=0, timeout=timeout)
                      for ep in endpoints]
        self._api = self._apis[0]

    # ---- public -------------------------------------------------------------------------------------

    def run(self, requests: Sequence[LLMRequest], parser: Callable[[str], Any], desc: str = "llm") -> list[LLMResult]:
        """Answer every request (cache first), results in input order. Raises BudgetExceeded before a call
        that would exceed the ledger's budget, after cancelling pending calls (answered ones stay cached)."""
        started = time.monotonic()
        keys = [r.key(self.endpoint.identity) for r in requests]
        occurrences = Counter(keys)
        results: dict[str, LLMResult] = {}
        todo: dict[str, LLMRequest] = {}
        for request, key in zip(requests, keys):
            if key in results or key in todo:
                continue
            entry = self.cache.get(key)
            if self._usable(entry):
                results[key] = self._from_cache(key, entry)
            else:
                todo[key] = request
        self._count(cache_hits=len(results), **Counter(_STATUS_COUNTER[r.status] for r in results.values()))
        self._warn_if_logprobs_unsupported(todo.values())

        bar = tqdm(total=len(requests), initial=sum(occurrences[k] for k in results), desc=desc,
                   unit="call", disable=not self.progress, dynamic_ncols=True)
        try:
            if todo:
                with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="llm") as pool:
                    futures = [pool.submit(self._call, request, key, parser) for key, request in todo.items()]
                    try:
                        for future in as_completed(futures):
                            result = future.result()
                            results[result.key] = result
                            bar.update(occurrences[result.key])
                    except BaseException:
                        # Budget reached, a bug, or Ctrl-C: start nothing new, let in-flight calls land in the cache.
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise
        finally:
            bar.close()
            with self._stats_lock:
                self.stats.seconds += time.monotonic() - started

        ordered, seen = [], set()
        for key in keys:
            # A repeated request in the same batch is served by its first occurrence.
            ordered.append(results[key] if key not in seen else replace(results[key], cached=True))
            if key in seen:
                self._count(cache_hits=1, **{_STATUS_COUNTER[results[key].status]: 1})
            seen.add(key)
        failed = sum(r.status == "error" for r in results.values())
        if failed:
            log.warning("%s: %d call(s) failed after retries and were not cached; re-run to retry them", desc, failed)
        if len(self.endpoints) > 1:
            log.info("%s: requests per endpoint %s (transport failures %s)", desc, self.calls_per_endpoint,
                     self.failures_per_endpoint)
        return ordered

    def forecast(self, requests: Sequence[LLMRequest]) -> dict:
        """What `run(requests)` would cost now, from the cache and the ledger's estimate; no backend call."""
        seen: set[str] = set()
        out = {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "usd": 0.0}
        for request in requests:
            key = request.key(self.endpoint.identity)
            if key in seen or self._usable(self.cache.get(key)):
                out["cache_hits"] += 1
            else:
                prompt_tokens, completion_tokens, cost = self.ledger.estimate(self.endpoint, request)
                out["calls"] += 1
                out["prompt_tokens"] += prompt_tokens
                out["completion_tokens"] += completion_tokens
                out["usd"] += cost
            seen.add(key)
        return out

    def close(self) -> None:
        for api in self._apis:
            api.close()

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- one logical call -----------------------------------------------------------------------------

    def _call(self, request: LLMRequest, key: str, parser: Callable[[str], Any]) -> LLMResult:
        estimate = self.ledger.estimate(self.endpoint, request)
        sent = prompt_tokens = completion_tokens = 0
        raw = logprobs = parsed = error = None
        status = "invalid"
        for generation in range(self.parse_retries + 1):
            try:
                reply, n = self._send(request, generation, estimate)
            except _CallFailed as failure:
                sent += failure.sent
                self._count(calls=1, errors=1, retries=sent - 1)
                log.warning("LLM call %s failed: %s", request.label or key[:12], failure.message)
                return LLMResult(key, "error", raw, None, sent, prompt_tokens, completion_tokens, cached=False,
                                 error=failure.message, logprobs=logprobs)
            sent += n
            prompt_tokens += reply.prompt_tokens or 0
            completion_tokens += reply.completion_tokens or 0
            raw, logprobs = reply.text, reply.logprobs
            try:
                parsed, status, error = _json_roundtrip(parser(raw)), "ok", None
                break
            except ParseError as e:
                error = f"ParseError: {e}"
                log.info("unparsable answer for %s (generation %d/%d): %s", request.label or key[:12],
                         generation + 1, self.parse_retries + 1, e)
        self.cache.put(key, identity=self.endpoint.identity, prompt_hash=request.prompt_hash,
                       request=request.to_json(), raw=raw, parsed=parsed, status=status, error=error, attempts=sent,
                       prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, logprobs=logprobs)
        self._count(calls=1, retries=sent - 1, **{_STATUS_COUNTER[status]: 1})
        return LLMResult(key, status, raw, parsed, sent, prompt_tokens, completion_tokens, cached=False,
                         error=error, logprobs=logprobs)

    def _request_kwargs(self, request: LLMRequest, generation: int, endpoint: Endpoint | None = None) -> dict:
        endpoint = endpoint or self.endpoint
        kwargs: dict[str, Any] = {
            "model": endpoint.model,
            "messages": [{"role": role, "content": content} for role, content in request.messages],
            "temperature": request.temperature if generation == 0 else max(request.temperature,
                                                                            RETRY_MIN_TEMPERATURE),
            "max_tokens": request.max_tokens,
            "top_p": request.top_p,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed + generation
        if request.schema is not None:
            response_format = _response_format(endpoint.structured_output, request.schema)
            if response_format is not None:
                kwargs["response_format"] = response_format
        if request.logprobs > 0 and endpoint.supports_logprobs:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = request.logprobs
        if endpoint.extra_body:
            kwargs["extra_body"] = dict(endpoint.extra_body)
        return kwargs

    def _send(self, request: LLMRequest, generation: int, estimate: tuple[int, int, float]) -> tuple[_Reply, int]:
        """One generation with transport retries: (reply, HTTP requests sent). Raises _CallFailed."""
        est_prompt, est_completion, est_usd = estimate
        last_error = ""
        failed_here: set[int] = set()  # endpoints this generation already failed on: retries go elsewhere
        for attempt in range(self.max_retries + 1):
            self.ledger.reserve(est_usd)  # BudgetExceeded propagates to run()
            # A request that may have been processed (timeout, cut body) may be billed: charge the estimate.
            actual_usd, prompt_tokens, completion_tokens = est_usd, 0, 0
            index = self._slots.acquire(failed_here)
            endpoint = self.endpoints[index]
            transport_failed = False
            self._count(backend_requests=1)
            with self._stats_lock:
                self.calls_per_endpoint[endpoint.base_url] += 1
            try:
                reply = _read_reply(self._apis[index].chat.completions.create(
                    **self._request_kwargs(request, generation, endpoint)))
                prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else est_prompt
                completion_tokens = (reply.completion_tokens if reply.completion_tokens is not None
                                     else est_completion)
                actual_usd = usd(endpoint, prompt_tokens, completion_tokens)
                return reply, attempt + 1
            except openai.APIStatusError as e:
                actual_usd = 0.0  # an HTTP error status is not billed
                last_error = f"HTTP {e.status_code} from {endpoint.base_url}: {e.message}"
                if e.status_code not in _RETRY_STATUS and e.status_code < 500:
                    raise _CallFailed(last_error, attempt + 1) from e
                transport_failed = True
            except (openai.APIConnectionError, openai.APIResponseValidationError, _MalformedResponse,
                    json.JSONDecodeError) as e:  # APITimeoutError is an APIConnectionError
                last_error = f"{type(e).__name__} from {endpoint.base_url}: {e}"
                transport_failed = True
            finally:
                self._slots.release(index, failed=transport_failed)
                if transport_failed:
                    failed_here.add(index)
                    with self._stats_lock:
                        self.failures_per_endpoint[endpoint.base_url] += 1
                self.ledger.settle(est_usd, actual_usd)
                self._count(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=actual_usd)
            if attempt < self.max_retries:
                delay = min(self.backoff_max, self.backoff_base * 2 ** attempt) * random.uniform(0.5, 1.0)
                log.info("retry %d/%d in %.2fs after %s", attempt + 1, self.max_retries, delay, last_error)
                time.sleep(delay)
        raise _CallFailed(f"gave up after {self.max_retries + 1} requests: {last_error}", self.max_retries + 1)

    # ---- helpers -------------------------------------------------------------------------------------

    def _usable(self, entry: dict | None) -> bool:
        return entry is not None and (entry["status"] == "ok" or (entry["status"] == "invalid"
                                                                   and not self.retry_invalid))

    @staticmethod
    def _from_cache(key: str, entry: dict) -> LLMResult:
        return LLMResult(key, entry["status"], entry["raw"], entry["parsed"], entry["attempts"],
                         entry["prompt_tokens"], entry["completion_tokens"], cached=True, error=entry["error"],
                         logprobs=entry["logprobs"])

    def _count(self, **deltas: float) -> None:
        with self._stats_lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def _warn_if_logprobs_unsupported(self, requests: Any) -> None:
        supported = all(ep.supports_logprobs for ep in self.endpoints)
        if not self._warned_logprobs and not supported and any(r.logprobs for r in requests):
            self._warned_logprobs = True
            log.warning("endpoint %s does not support logprobs: results will have logprobs=None",
                        self.endpoint.identity)
