"""The one LLM client every stage uses: cache first, bounded concurrency, retries, structured output, budget.

    client = LLMClient(endpoint, CallCache(cache_dir), CostLedger(max_usd=5.0))
    results = client.run(requests, parser=parse_score_pair, desc="score")   # input order

Several endpoints (replicas of ONE model: one identity, one set of cache keys) share the calls
(tacos.llm.calling.dispatch).
What can happen to a call (README "How it works" has the long form):
  * transport trouble (408/409/429, 5xx, timeouts, broken bodies): retried with backoff (at least Retry-After);
    still failing: status "error", NOT cached, so a re-run retries it;
  * the prompt does not fit the context (a 400 saying so): "invalid" with the reason, cached;
  * the endpoint refuses everything (401/403/404): LLMUnavailable at once, pending calls cancelled;
  * the answer does not parse: regenerated (seed + g, temperature >= RETRY_MIN_TEMPERATURE) up to `parse_retries`
    times, then "invalid" with the raw text kept (a reply cut at max_tokens says so): never a default value;
  * Ctrl-C or an exception: nothing new starts, retry waits end, in-flight requests are abandoned.
`parsed` is the JSON round trip of the parser's value, so a cached result equals the fresh one.
The module is over 300 lines because a call's retries, cancellation and budget must be read in one place.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from typing import Any, Callable, Sequence

import openai
from tqdm.auto import tqdm

from tacos.llm.calling.cache import CallCache
from tacos.llm.calling.dispatch import Slots
from tacos.llm.calling.types import Endpoint
from tacos.llm.calling.ledger import CostLedger, usd
from tacos.llm.calling.parsing import ParseError
from tacos.llm.calling.types import CallStats, LLMRequest, LLMResult, LLMUnavailable
from tacos.llm.calling.wire import (MalformedResponse, Reply, context_exceeded, is_loopback, read_reply, request_body,
                            response_format, retry_after_seconds)

log = logging.getLogger(__name__)
# The HTTP libraries log every request at INFO ("HTTP Request: POST ... 200 OK": ~150k lines for Alpaca-52k): those
# lines are DEBUG here, shown only when their logger is at DEBUG (hydra.verbose=true or hydra.verbose=httpx2).
HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "openai._base_client")


class RequestLinesAtDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def http_lines_at_debug() -> None:
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RequestLinesAtDebug) for f in logger.filters):
            logger.addFilter(RequestLinesAtDebug())


http_lines_at_debug()

_RETRY_STATUS = {408, 409, 429}  # plus every 5xx; the same set the openai SDK itself retries
_FATAL_STATUS = {401, 403, 404}  # wrong key, no permission, wrong model or URL: no call can succeed
_STATUS_COUNTER = {"ok": "ok", "invalid": "invalid", "error": "errors"}  # LLMResult.status -> CallStats field


class _CallFailed(Exception):
    def __init__(self, message: str, sent: int, too_long: bool = False):
        super().__init__(message)
        self.message = message
        self.sent = sent  # HTTP requests sent before giving up
        self.too_long = too_long  # the prompt does not fit: an answer about the input, cached as invalid


class _Cancelled(Exception):
    """The run was interrupted: this call stops before its next request."""


def _json_roundtrip(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise TypeError(f"the parser must return a JSON-serialisable value (it is cached), got {value!r}: {e}") from e


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
            response_format(ep.structured_output, {})  # fail fast on an unknown mode
        self.endpoints = endpoints
        self.endpoint = endpoints[0]  # identity, prices and cost estimates: the same for every endpoint
        self.cache = cache
        self.ledger = ledger if ledger is not None else CostLedger()
        self._slots = Slots([ep.base_url for ep in endpoints], [ep.max_concurrency for ep in endpoints],
                            max_concurrency)
        self.max_concurrency, self.endpoint_limits = self._slots.max_concurrency, self._slots.limits
        self.calls_per_endpoint = self._slots.requests  # HTTP requests sent, by base_url
        self.failures_per_endpoint = self._slots.failures  # transport failures, by base_url
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.parse_retries = parse_retries
        self.retry_invalid = retry_invalid
        self.progress = progress
        self.stats = CallStats()
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()  # set when a run is aborted: retry waits and new requests end at once
        self._warned_logprobs = False
        # max_retries=0: the SDK must not retry behind our back; retries, backoff and counting are ours.
        # Loopback servers are reached directly, whatever http(s)_proxy says.
        self._apis = [openai.OpenAI(base_url=ep.base_url, api_key=ep.api_key(), max_retries=0, timeout=timeout,
                                    http_client=openai.DefaultHttpxClient(trust_env=False)
                                    if is_loopback(ep.base_url) else None)
                      for ep in endpoints]

    # ---- public -------------------------------------------------------------------------------------

    def run(self, requests: Sequence[LLMRequest], parser: Callable[[str], Any], desc: str = "llm") -> list[LLMResult]:
        """Answer every request (cache first), results in input order. Raises BudgetExceeded before a call
        that would exceed the ledger's budget and LLMUnavailable when the endpoint refuses calls, after
        cancelling pending calls (answered ones stay cached)."""
        started = time.monotonic()
        self._stop.clear()
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
                self._answer(todo, parser, results, occurrences, bar)
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

    def _answer(self, todo: dict[str, LLMRequest], parser, results: dict, occurrences: Counter, bar) -> None:
        pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="llm")
        interrupted = False
        try:
            futures = [pool.submit(self._call, request, key, parser) for key, request in todo.items()]
            for future in as_completed(futures):
                if isinstance(future.exception(), _Cancelled):
                    continue  # stopped because another call failed first: that call's error is the one to raise
                result = future.result()
                results[result.key] = result
                bar.update(occurrences[result.key])
        except BaseException as e:
            # Budget reached, endpoint refused, a bug, or Ctrl-C: start nothing new, end retry waits now.
            self._stop.set()
            interrupted = isinstance(e, (KeyboardInterrupt, SystemExit))  # Ctrl-C, or SIGTERM (run.py: SystemExit)
            raise
        finally:
            # On Ctrl-C nobody waits for in-flight HTTP requests (they may take minutes); otherwise they land in
            # the cache before we return.
            pool.shutdown(wait=not interrupted, cancel_futures=True)

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
        self._stop.set()
        for api in self._apis:
            api.close()

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- one logical call -----------------------------------------------------------------------------

    def _call(self, request: LLMRequest, key: str, parser: Callable[[str], Any]) -> LLMResult:
        estimate = self.ledger.estimate(self.endpoint, request)
        started = time.monotonic()
        sent = prompt_tokens = completion_tokens = 0
        raw = logprobs = parsed = error = finish = None
        status = "invalid"
        for generation in range(self.parse_retries + 1):
            try:
                reply, n = self._send(request, generation, estimate)
            except _CallFailed as failure:
                sent += failure.sent
                if failure.too_long:  # an answer about this input: cached, so no re-run asks again
                    self._count(too_long=1)
                    error = f"input too long: {failure.message}"
                    break
                self._count(calls=1, errors=1, retries=sent - 1)
                log.warning("LLM call %s failed: %s", request.label or key[:12], failure.message)
                return LLMResult(key, "error", raw, None, sent, prompt_tokens, completion_tokens, cached=False,
                                 error=failure.message, logprobs=logprobs, finish_reason=finish)
            sent += n
            prompt_tokens += reply.prompt_tokens or 0
            completion_tokens += reply.completion_tokens or 0
            raw, logprobs, finish = reply.text, reply.logprobs, reply.finish_reason
            try:
                parsed, status, error = _json_roundtrip(parser(raw)), "ok", None
                break
            except ParseError as e:
                cut = f" (cut at max_tokens={request.max_tokens}: finish_reason=length)" if finish == "length" else ""
                error = f"ParseError{cut}: {e}"
                log.info("unparsable answer for %s (generation %d/%d)%s: %s", request.label or key[:12],
                         generation + 1, self.parse_retries + 1, cut, e)
        latency = round(time.monotonic() - started, 4)  # one reading: the cached copy must equal this result
        self.cache.put(key, identity=self.endpoint.identity, prompt_hash=request.prompt_hash,
                       request=request.to_json(), raw=raw, parsed=parsed, status=status, error=error, attempts=sent,
                       prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, logprobs=logprobs,
                       finish_reason=finish, latency_s=latency)
        self._count(calls=1, retries=max(0, sent - 1), **{_STATUS_COUNTER[status]: 1})
        return LLMResult(key, status, raw, parsed, sent, prompt_tokens, completion_tokens, cached=False,
                         error=error, logprobs=logprobs, finish_reason=finish, latency_s=latency)

    def _send(self, request: LLMRequest, generation: int, estimate: tuple[int, int, float]) -> tuple[Reply, int]:
        """One generation with transport retries: (reply, HTTP requests sent). Raises _CallFailed."""
        est_prompt, est_completion, est_usd = estimate
        last_error = ""
        failed_here: set[int] = set()  # endpoints this generation already failed on: retries go elsewhere
        for attempt in range(self.max_retries + 1):
            if self._stop.is_set():
                raise _Cancelled()
            self.ledger.reserve(est_usd)  # BudgetExceeded propagates to run()
            # A request that may have been processed (timeout, cut body) may be billed: charge the estimate.
            actual_usd, prompt_tokens, completion_tokens = est_usd, 0, 0
            index = self._slots.acquire(failed_here)
            endpoint = self.endpoints[index]
            transport_failed = False
            wait = None
            self._count(backend_requests=1)
            try:
                reply = read_reply(self._apis[index].chat.completions.create(**request_body(
                    request, generation, endpoint.model, endpoint.structured_output, endpoint.supports_logprobs,
                    endpoint.extra_body, endpoint.grammar)))
                prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else est_prompt
                completion_tokens = (reply.completion_tokens if reply.completion_tokens is not None
                                     else est_completion)
                actual_usd = usd(endpoint, prompt_tokens, completion_tokens)
                # A one-token read-out (log-prob judgments) stops at max_tokens by design: not a truncation.
                if reply.finish_reason == "length" and request.max_tokens != 1:
                    self._count(truncated=1)
                return reply, attempt + 1
            except openai.APIStatusError as e:
                actual_usd = 0.0  # an HTTP error status is not billed
                last_error = f"HTTP {e.status_code} from {endpoint.base_url}: {e.message}"
                if e.status_code in _FATAL_STATUS:
                    self._stop.set()  # no worker starts another request, not even before run() sees this error
                    raise LLMUnavailable(
                        f"{last_error}. The endpoint refuses calls: check the API key variable "
                        f"({endpoint.api_key_env or 'none set'}), llm.model ({endpoint.model}) and llm.base_url. "
                        f"Nothing else was sent.") from e
                if context_exceeded(e.status_code, e.message):
                    raise _CallFailed(last_error, attempt + 1, too_long=True) from e
                if e.status_code not in _RETRY_STATUS and e.status_code < 500:
                    raise _CallFailed(last_error, attempt + 1) from e
                transport_failed = True
                wait = retry_after_seconds(e.response.headers if e.response is not None else None,
                                           cap=max(self.backoff_max, 120.0))
            except (openai.APIConnectionError, openai.APIResponseValidationError, MalformedResponse,
                    json.JSONDecodeError) as e:  # APITimeoutError is an APIConnectionError
                last_error = f"{type(e).__name__} from {endpoint.base_url}: {e}"
                transport_failed = True
            finally:
                self._slots.release(index, failed=transport_failed)
                if transport_failed:
                    failed_here.add(index)
                self.ledger.settle(est_usd, actual_usd)
                self._count(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=actual_usd)
            if attempt < self.max_retries:
                delay = min(self.backoff_max, self.backoff_base * 2 ** attempt) * random.uniform(0.5, 1.0)
                delay = max(delay, wait or 0.0)
                log.info("retry %d/%d in %.2fs after %s", attempt + 1, self.max_retries, delay, last_error)
                if self._stop.wait(delay):
                    raise _Cancelled()
        raise _CallFailed(f"gave up after {self.max_retries + 1} requests: {last_error}", self.max_retries + 1)

    # ---- helpers -------------------------------------------------------------------------------------

    def _usable(self, entry: dict | None) -> bool:
        return entry is not None and (entry["status"] == "ok" or (entry["status"] == "invalid"
                                                                   and not self.retry_invalid))

    @staticmethod
    def _from_cache(key: str, entry: dict) -> LLMResult:
        return LLMResult(key, entry["status"], entry["raw"], entry["parsed"], entry["attempts"],
                         entry["prompt_tokens"], entry["completion_tokens"], cached=True, error=entry["error"],
                         logprobs=entry["logprobs"], finish_reason=entry.get("finish_reason"),
                         latency_s=entry.get("latency_s"))

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
