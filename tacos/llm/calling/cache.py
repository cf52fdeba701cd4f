"""The call cache: one SQLite row per answered LLM call, keyed by `LLMRequest.key(identity)`.

WAL mode and a commit after every put, so a run killed with kill -9 loses no answered call and a
re-run resumes where it stopped. Several processes may share one cache file (SQLite locking,
busy timeout); inside a process one connection is shared by the client's threads behind a lock.
Any SQLite failure (a corrupt or read-only file, a full disk, a lock held too long) is a `CacheError` naming the
file and the fix.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

CACHE_FILENAME = "llm_calls.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    request TEXT NOT NULL,          -- the request as JSON (messages, parameters, schema)
    raw TEXT,                       -- the assistant text exactly as received
    parsed TEXT,                    -- JSON of the parser's value; NULL when invalid
    status TEXT NOT NULL,           -- ok | invalid
    error TEXT,
    attempts INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    logprobs TEXT,                  -- JSON list of generated tokens with their top_logprobs, or NULL
    created_at REAL NOT NULL,
    finish_reason TEXT,             -- of the last generation: stop | length (cut at max_tokens) | NULL
    latency_s REAL                  -- wall time of the call (every request, retries included), for s/1000 calls
)
"""
_COLUMNS = ("key", "identity", "prompt_hash", "request", "raw", "parsed", "status", "error", "attempts",
            "prompt_tokens", "completion_tokens", "logprobs", "created_at", "finish_reason", "latency_s")
_JSON_COLUMNS = ("request", "parsed", "logprobs")


class CacheError(RuntimeError):
    """The call cache's SQLite file cannot be used; the message names the file and what to do."""


def _advice(error: sqlite3.Error) -> str:
    text = str(error).lower()
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return ("the file is damaged: move it away (its answered calls are lost; they will be asked again) or set "
                "paths.cache_dir to another folder")
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return ("the file or its folder is not writable: make both writable (SQLite also writes -wal and -shm files "
                "next to it) or set paths.cache_dir to a writable folder")
    if "disk is full" in text or "disk i/o" in text:
        return "disk full (or failing): free space or set paths.cache_dir to another disk"
    if "locked" in text or "busy" in text:
        return ("another process holds it locked: wait for it, or set paths.cache_dir to another folder (a cache on "
                "a network filesystem may not support SQLite locking)")
    return "set paths.cache_dir to another folder, or move the file away"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)


class CallCache:
    """SQLite store at `<cache_dir>/llm_calls.sqlite`; thread-safe."""

    def __init__(self, cache_dir: str | Path):
        self.path = Path(cache_dir) / CACHE_FILENAME
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(f"LLM call cache {self.path}: cannot create its folder ({e}); set paths.cache_dir to a "
                             f"writable folder") from e
        try:
            with self._sqlite("opening"):
                self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=60.0)
                self._conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL is durable against a killed process in WAL mode (only power loss can drop the last commits).
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute(_SCHEMA)
                columns = {row[1] for row in self._conn.execute("PRAGMA table_info(calls)")}
                for column, kind in (("finish_reason", "TEXT"), ("latency_s", "REAL")):
                    if column not in columns:  # a cache written before this column existed
                        self._conn.execute(f"ALTER TABLE calls ADD COLUMN {column} {kind}")
                self._conn.commit()
        except CacheError:
            self.close()
            raise

    @contextlib.contextmanager
    def _sqlite(self, doing: str) -> Iterator[None]:
        """Hold the lock; an SQLite failure becomes a CacheError naming the file and the fix."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as e:
                raise CacheError(f"LLM call cache {self.path}: SQLite error while {doing} ({type(e).__name__}: "
                                 f"{e}); {_advice(e)}") from e

    def get(self, key: str) -> dict | None:
        with self._sqlite("reading"):
            row = self._conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM calls WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        entry = dict(zip(_COLUMNS, row))
        for column in _JSON_COLUMNS:
            entry[column] = None if entry[column] is None else json.loads(entry[column])
        return entry

    def put(self, key: str, *, identity: str, prompt_hash: str, request: dict, raw: str | None, parsed: Any,
            status: str, error: str | None, attempts: int, prompt_tokens: int, completion_tokens: int,
            logprobs: list | None, finish_reason: str | None = None, latency_s: float | None = None) -> None:
        if status not in ("ok", "invalid"):
            raise ValueError(f"only answered calls are cached (status ok|invalid), got {status!r}")
        row = (key, identity, prompt_hash, _dumps(request), raw, None if parsed is None else _dumps(parsed),
               status, error, attempts, prompt_tokens, completion_tokens,
               None if logprobs is None else _dumps(logprobs), time.time(), finish_reason, latency_s)
        with self._sqlite("writing"):
            self._conn.execute(f"INSERT OR REPLACE INTO calls ({', '.join(_COLUMNS)}) "
                               f"VALUES ({', '.join('?' * len(_COLUMNS))})", row)
            self._conn.commit()

    def __len__(self) -> int:
        with self._sqlite("counting"):
            return self._conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def __enter__(self) -> "CallCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
