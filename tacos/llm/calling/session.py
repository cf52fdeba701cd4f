"""One LLM session per run: the provider (started lazily, only when a call misses the cache), the cache and the ledger.

The local server is the slow part of a run's start; a re-run whose calls are all cached never starts it.
"""
from __future__ import annotations

import logging

from pathlib import Path
from typing import Any, Callable, Sequence

from tacos.llm.calling.types import Endpoint
from tacos.llm.calling.settings import ClientSettings
from tacos.llm.calling.types import LLMCallsFailed

log = logging.getLogger(__name__)


class LLMSession:
    """`log_dir` is the run dir: the local server's log goes there, and the LLM spend record (`llm_spend.json`,
    see tacos.llm.calling.ledger), so `max_usd` caps what every process run in that dir spends together (a re-run, a
    requeued job), not what each spends. `client_cfg` is the config's `client:` mapping (tacos.llm.calling.settings)."""

    def __init__(self, provider: Any, cache_dir: str | Path, client_cfg: dict | ClientSettings, max_usd: float | None,
                 log_dir: Path | None = None, spend_file: Path | None = None):
        from tacos.llm.calling.cache import CallCache
        from tacos.llm.calling.types import CallStats
        from tacos.llm.calling.ledger import SPEND_FILE, CostLedger

        self.settings = ClientSettings.from_config(client_cfg)  # before anything is opened: a wrong value names it
        if spend_file is None and log_dir is not None:
            spend_file = Path(log_dir) / SPEND_FILE
        self.provider = provider
        self.identity: str = provider.identity
        self.ledger = CostLedger(max_usd, spend_file=spend_file)
        self.cache = CallCache(cache_dir)
        self.client_cfg = self.settings.client_kwargs()
        self.max_error_rate = self.settings.max_error_rate
        self.log_dir = log_dir
        self._endpoint: Endpoint | list[Endpoint] | None = None  # a list from a pool provider (llm=pool)
        self._client = None
        self._offline_client = None
        self._stats_closed = CallStats()  # stats of clients already replaced
        self.server_start_seconds: float | None = None

    # -- clients -------------------------------------------------------------------------------------------------
    def _make_client(self, endpoint: Endpoint | list[Endpoint]):
        from tacos.llm.calling.client import LLMClient

        return LLMClient(endpoint, self.cache, self.ledger, **self.client_cfg)

    def _cache_only_client(self):
        """A client that can answer from the cache: same identity, no server behind it."""
        if self._offline_client is None:
            price_in, price_out = self.provider.prices() if hasattr(self.provider, "prices") else (0.0, 0.0)
            # Same identity and prices as the real endpoint, so cache hits and cost forecasts are the real ones.
            ep = Endpoint(base_url="http://127.0.0.1:9/v1", model="cache-only", identity=self.identity,
                          price_in_per_mtok=price_in, price_out_per_mtok=price_out)
            self._offline_client = self._make_client(ep)
        return self._offline_client

    def _live_client(self):
        if self._client is None:
            import time

            t0 = time.perf_counter()
            started = self.provider.start(log_dir=self.log_dir)
            self._endpoint = started if isinstance(started, Endpoint) else list(started)
            self.server_start_seconds = round(time.perf_counter() - t0, 3)
            urls = ([self._endpoint.base_url] if isinstance(self._endpoint, Endpoint)
                    else [ep.base_url for ep in self._endpoint])
            log.info("LLM endpoint%s %s ready in %.1f s (%s)", "s" if len(urls) > 1 else "", ", ".join(urls),
                     self.server_start_seconds, self.identity)
            self._client = self._make_client(self._endpoint)
        return self._client

    @property
    def supports_logprobs(self) -> bool:
        """Whether the endpoint returns token log-probabilities (known without starting anything)."""
        return bool(self.provider.supports_logprobs)

    # -- calls ---------------------------------------------------------------------------------------------------
    def forecast(self, requests: Sequence) -> dict:
        return self._cache_only_client().forecast(requests)

    def run(self, requests: Sequence, parser: Callable[[str], Any], desc: str) -> list:
        """Answer `requests` (see LLMClient.run). Raises LLMCallsFailed when more than `client.max_error_rate` of
        them still failed in transport after every retry: those are not cached, so a re-run asks only them."""
        if not requests:
            return []
        fc = self.forecast(requests)
        client = self._cache_only_client() if fc["calls"] == 0 else self._live_client()
        results = client.run(requests, parser, desc=desc)
        failed = [r for r in results if r.status == "error"]
        if failed and len(failed) / len(results) > self.max_error_rate:
            raise LLMCallsFailed(
                f"{desc}: {len(failed)}/{len(results)} LLM calls failed after retries (first error: {failed[0].error}). "
                f"Answered calls are cached; re-run to retry only the failed ones (or raise client.max_error_rate).")
        return results

    @property
    def run_spent_usd(self) -> float:
        """What the run dir has spent on LLM calls so far, earlier processes included (what the budget counts)."""
        return self.ledger.spent_usd

    @property
    def stats(self):
        total = self._stats_closed
        for c in (self._client, self._offline_client):
            if c is not None:
                total = total + c.stats
        return total

    def close(self) -> None:
        try:
            if self._client is not None:
                self.provider.stop()
        finally:
            self.cache.close()


def stats_dict(stats: Any) -> dict:
    from dataclasses import asdict

    d = asdict(stats)
    d["cost_usd"] = round(d.get("cost_usd", 0.0), 6)
    d["seconds"] = round(d.get("seconds", 0.0), 3)
    return d


__all__ = ["LLMSession", "stats_dict"]
