"""Cost ledger: estimates a call's price, reserves it before the call and settles the actual cost after.

Reserving before sending is what lets concurrent workers stop *before* the budget is exceeded:
spent + reserved + next estimate must stay within `max_usd`.

The budget is per run dir, not per process: with a `spend_file` (`<run_dir>/llm_spend.json`) the ledger starts from
what earlier processes spent there (a re-run, a requeued job) and adds every settled call to the file (atomic
replace under a file lock, so concurrent writers add up), so `max_usd` caps the run dir's total spend; it is exceeded
by at most the calls in flight.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from tacos.records import DiskFull, is_disk_full

if TYPE_CHECKING:
    from tacos.llm.calling.types import LLMRequest
    from tacos.llm.calling.types import Endpoint

# Rough token count of the chat template around each message (role markers, separators).
_TOKENS_PER_MESSAGE = 4
SPEND_FILE = "llm_spend.json"


class BudgetExceeded(RuntimeError):
    """Raised before a call whose estimated cost would take the spend past the budget."""


def usd(endpoint: "Endpoint", prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * endpoint.price_in_per_mtok + completion_tokens * endpoint.price_out_per_mtok) / 1e6


def read_spend(path: str | Path) -> dict:
    """The content of a spend file ({"spent_usd": 0.0, "calls": 0} when there is none)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        spent = float(data["spent_usd"])
        if not math.isfinite(spent) or spent < 0:
            raise ValueError(f"spent_usd is {spent}")
        return {"spent_usd": spent, "calls": int(data.get("calls", 0))}
    except FileNotFoundError:
        return {"spent_usd": 0.0, "calls": 0}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot read the run dir's LLM spend record {path} ({e}); it holds what earlier runs in "
                         f"this run dir spent, so the budget (budget.max_usd) counts it. Fix the file, or delete it "
                         f"to count from zero.") from e


class CostLedger:
    """Thread-safe spend tracker, shareable by several clients (one budget for a whole run)."""

    def __init__(self, max_usd: float | None = None, spend_file: str | Path | None = None):
        if max_usd is not None and max_usd < 0:
            raise ValueError(f"max_usd must be >= 0 or None (no limit), got {max_usd}")
        self.max_usd = max_usd
        self.spend_file = Path(spend_file) if spend_file is not None else None
        self._earlier = read_spend(self.spend_file)["spent_usd"] if self.spend_file else 0.0
        self._run_spent = self._earlier  # the run dir's total as last seen (this process's share included)
        self._spent = 0.0  # this process's share
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
            if self.max_usd is not None and self._run_spent + self._reserved + usd_amount > self.max_usd:
                earlier = (f" (${self._run_spent - self._spent:.4f} of it by earlier runs in this run dir, "
                           f"{self.spend_file})" if self.spend_file and self._run_spent > self._spent else "")
                raise BudgetExceeded(
                    f"LLM budget reached: spent ${self._run_spent:.4f}{earlier} + in flight ${self._reserved:.4f} + "
                    f"next call ${usd_amount:.4f} > max ${self.max_usd:.4f}. Answered calls are cached; raise the "
                    f"budget (budget.max_usd; or check the forecast of a dry run) and re-run to continue.")
            self._reserved += usd_amount

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        with self._lock:
            self._reserved = max(0.0, self._reserved - reserved_usd)
            self._spent += actual_usd
            if self.spend_file is None:
                self._run_spent += actual_usd
            elif actual_usd > 0:  # a free call changes nothing on disk
                self._run_spent = self._add_to_file(actual_usd)

    def _add_to_file(self, amount: float) -> float:
        """Add `amount` to the spend file (read, add, atomic replace, all under the file lock); the new total."""
        assert self.spend_file is not None
        with _file_lock(self.spend_file.with_name(self.spend_file.name + ".lock")):
            record = read_spend(self.spend_file)
            record = {"spent_usd": record["spent_usd"] + amount, "calls": record["calls"] + 1,
                      "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            tmp = self.spend_file.with_name(f".{self.spend_file.name}.{os.getpid()}.tmp")
            try:
                tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
                os.replace(tmp, self.spend_file)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                if is_disk_full(e):
                    raise DiskFull(self.spend_file, e.errno) from e
                raise
            return record["spent_usd"]

    @property
    def spent_usd(self) -> float:
        """What counts against the budget: the run dir's total when there is a spend file, else this process's."""
        with self._lock:
            return self._run_spent

    @property
    def process_spent_usd(self) -> float:
        with self._lock:
            return self._spent

    @property
    def reserved_usd(self) -> float:
        with self._lock:
            return self._reserved

    def summary(self) -> dict:
        """spent_usd counts against max_usd; with a spend file it is the run dir's total, and process_spent_usd
        is this process's share."""
        with self._lock:
            remaining = None if self.max_usd is None else max(0.0, self.max_usd - self._run_spent)
            out = {"spent_usd": self._run_spent, "reserved_usd": self._reserved, "max_usd": self.max_usd,
                   "remaining_usd": remaining}
            if self.spend_file is not None:
                out.update(process_spent_usd=self._spent, spend_file=str(self.spend_file))
            return out


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks: one process per run dir (run.py's lock) still holds
            pass
        yield
