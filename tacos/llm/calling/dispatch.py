"""Spreading calls over several endpoints (replicas of one model): per-endpoint concurrency slots.

Every request goes to the endpoint with the most free slots (ties: round robin), so a slow replica gets fewer
calls; an endpoint whose last request failed is used only when no healthy one has a free slot, and a retry avoids
the endpoints that already failed for this call when another one exists.
"""
from __future__ import annotations

import threading
from typing import Sequence


def split_concurrency(total: int, weights: Sequence[int]) -> list[int]:
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


class Slots:
    """Per-endpoint concurrency: acquire() blocks until the best allowed endpoint has a free slot. Counts the HTTP
    requests sent to each endpoint and its transport failures (by base_url)."""

    def __init__(self, base_urls: Sequence[str], own_limits: Sequence[int], max_concurrency: int | None = None):
        own_limits = [max(1, n) for n in own_limits]
        if max_concurrency:  # the client's own cap, spread over the endpoints in proportion to theirs
            limits = split_concurrency(max(1, max_concurrency), own_limits)
            self.max_concurrency = max(1, min(max_concurrency, sum(limits)))
        else:
            limits = own_limits
            self.max_concurrency = sum(limits)
        self.limits = limits
        self.base_urls = list(base_urls)
        self.requests = {url: 0 for url in self.base_urls}
        self.failures = {url: 0 for url in self.base_urls}
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
                    self.requests[self.base_urls[chosen]] += 1
                    return chosen
                self._cond.wait()

    def release(self, index: int, failed: bool) -> None:
        with self._cond:
            self.in_flight[index] -= 1
            self.failures[self.base_urls[index]] += failed
            self.failing[index] = failed
            self._cond.notify_all()
