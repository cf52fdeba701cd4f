"""Cost ledger: estimates a call's price, reserves it before the call and settles the actual cost after.

Reserving before sending is what lets concurrent workers stop *before* the budget is exceeded:
spent + reserved + next estimate must stay within `max_usd`.
"""
from __future__ import annotations

import json
import math
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tacos.llm.types import LLMRequest
    from tacos.llm.endpoint import Endpoint

# Rough token count of the chat template around each message (role markers, separators).
_TOKENS_PER_MESSAGE = 4


class BudgetExceeded(RuntimeError):
    """Raised before a call whose estimated cost would take the spend past the budget."""


def usd(endpoint: "Endpoint", prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * endpoint.price_in_per_mtok + completion_tokens * endpoint.price_out_per_mtok) / 1e6


class CostLedger:
    """Thread-safe spend tracker, shareable by several clients (one budget for a whole run)."""

    def __init__(self, max_usd: float | None = None):
        if max_usd is not None and max_usd < 0:
            raise ValueError(f"max_usd must be >= 0 or None (no limit), got {max_usd}")
        self.max_usd = max_usd
        self._spent = 0.0
        self._reserved = 0.0
        self._lock = threading.Lock()

    def estimate(self, endpoint: "Endpoint", request: "LLMRequest") -> tuple[int, int, float]:
        """(prompt tokens, completion tokens, usd) before the call: chars/4 for the prompt (plus the schema
        when one is sent), max_tokens for the completion, so the usd is an upper bound in most cases."""
        chars = sum(len(content) for _, content in request.messages)
        if request.schema is not None:
            chars += len(json.dumps(request.schema))
        prompt_tokens = math.ceil(chars / 4) + _TOKENS_PER_MESSAGE * len(request.messages)
        completion_tokens = request.max_tokens
        return prompt_tokens, completion_tokens, usd(endpoint, prompt_tokens, completion_tokens)

    def reserve(self, usd_amount: float) -> None:
        with self._lock:
            if self.max_usd is not None and self._spent + self._reserved + usd_amount > self.max_usd:
                raise BudgetExceeded(
                    f"LLM budget reached: spent ${self._spent:.4f} + in flight ${self._reserved:.4f} + next call "
                    f"${usd_amount:.4f} > max ${self.max_usd:.4f}. Answered calls are cached; raise the budget "
                    f"(or check the forecast of a dry run) and re-run to continue.")
            self._reserved += usd_amount

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        with self._lock:
            self._reserved = max(0.0, self._reserved - reserved_usd)
            self._spent += actual_usd

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return self._spent

    @property
    def reserved_usd(self) -> float:
        with self._lock:
            return self._reserved

    def summary(self) -> dict:
        with self._lock:
            remaining = None if self.max_usd is None else max(0.0, self.max_usd - self._spent)
            return {"spent_usd": self._spent, "reserved_usd": self._reserved, "max_usd": self.max_usd,
                    "remaining_usd": remaining}
