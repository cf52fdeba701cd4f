"""Is a server someone else runs there? Waiting for GET <base_url>/models at the start of `llm=openai_compatible`
and `llm=pool`, telling a dead server from a busy one.

A busy server is not a dead one: llama-cpp-python's server answers GET /models only after the completions queued
before it (37-64 s measured while it served another run), and after a run is killed with -9 its orphaned request
keeps a single-slot server busy for as long as that answer takes. So:

  * nothing to connect to (connection refused, host not found, no TCP connection within `connect_timeout_s`) and
    HTTP 401/403/404 (the server is there but refuses us or the URL is wrong) fail at once, saying what to check;
  * a server that accepted the connection but has not answered yet is waited for, with one "server busy, still
    waiting, N s" line after `connect_timeout_s` and then about every 10 s, up to `ready_timeout_s`;
  * 5xx, 408 and 429 (loading a model, overloaded) and a connection closed without an answer are asked again
    every 2 s within the same limit.

One GET is kept open while we wait rather than asked again every few seconds: a new GET would queue behind the
completions that arrived in between. The GETs run in daemon threads so that Ctrl-C never waits for them.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import httpx

from tacos.llm.calling.wire import is_loopback

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 10.0  # seconds between two "server busy" lines
RETRY_PAUSE_S = 2.0  # pause before asking again after a 5xx/408/429 or a dropped connection
_BUSY_STATUSES = (408, 429)  # besides 5xx: the server is there but cannot answer yet

START_FIX = ("Start a server there (e.g. `vllm serve MODEL` or `python -m llama_cpp.server`) or fix the URL in the "
             "llm config (llm.base_url or llm.endpoints; it must end with /v1)")
KEY_FIX = ("Put the key into an environment variable and name that variable in llm.api_key_env (without it the key "
           "sent is 'EMPTY')")
PATH_FIX = "Check llm.base_url (or llm.endpoints): it must be the API root ending with /v1, e.g. http://HOST:8000/v1"
WAIT_FIX = ("The server accepts connections, so it is there but busy (llama-cpp-python answers GET /models only "
            "after its queued completions) or stuck: let it finish, restart it, or wait longer with "
            "llm.ready_timeout_s=SECONDS")


@dataclass(frozen=True)
class NotServing:
    """Why the server at `url` cannot be used, and what to do about it."""

    url: str
    problem: str
    fix: str


@dataclass
class _Probe:
    """The wait for one URL, filled in by its thread."""

    url: str
    done: threading.Event = field(default_factory=threading.Event)
    failure: tuple[str, str] | None = None  # (problem, fix) once it failed for good; None while fine
    timed_out: bool = False  # no answer within ready_timeout_s (the message is built once the wait is over)
    last_state: str = ""  # what the last retried attempt got (e.g. HTTP 503), for the progress and timeout lines

    def waiting_for(self) -> str:
        return f"{self.url} (last: {self.last_state})" if self.last_state else self.url


def _refusal(status: int) -> tuple[str, str]:
    """(problem, fix) of an HTTP status that asking again will not change."""
    if status in (401, 403):
        return f"HTTP {status}: the server refuses our key", KEY_FIX
    if status == 404:
        return "HTTP 404: nothing is served at this path", PATH_FIX
    return f"HTTP {status}: the server rejects GET /models", f"{PATH_FIX}; if it wants a key: {KEY_FIX}"


def _ask(probe: _Probe, client: httpx.Client, connect_timeout_s: float, deadline: float) -> bool:
    """One GET; True when the wait for this URL is over (answered, or failed for good)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        probe.timed_out = True
        return True
    # The read limit is the whole remaining wait: a busy server keeps our place in its queue.
    timeout = httpx.Timeout(remaining, connect=min(connect_timeout_s, remaining))
    try:
        response = client.get(probe.url, timeout=timeout)
    except httpx.ConnectTimeout:
        if remaining < connect_timeout_s:  # the whole wait ran out, not the connect limit
            probe.timed_out = True
        else:
            probe.failure = f"no TCP connection within {connect_timeout_s:g} s (llm.check_timeout_s)", START_FIX
        return True
    except httpx.ConnectError as e:  # refused, host not found, network unreachable
        probe.failure = f"cannot connect ({e})", START_FIX
        return True
    except httpx.ReadTimeout:
        probe.timed_out = True
        return True
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
        probe.last_state = f"connection closed without an answer ({e})"
        return False
    except httpx.HTTPError as e:  # an unsupported scheme, a malformed URL, a proxy error, ...
        probe.failure = f"{type(e).__name__}: {e}", START_FIX
        return True
    if 200 <= response.status_code < 300:
        return True
    if response.status_code >= 500 or response.status_code in _BUSY_STATUSES:
        probe.last_state = f"HTTP {response.status_code}"
        return False
    probe.failure = _refusal(response.status_code)
    return True


def _wait_for(probe: _Probe, headers: Mapping[str, str], connect_timeout_s: float, deadline: float) -> None:
    try:
        # Loopback is reached directly whatever http(s)_proxy says (as the LLM client does); others may need it.
        with httpx.Client(headers=dict(headers), trust_env=not is_loopback(probe.url)) as client:
            while not _ask(probe, client, connect_timeout_s, deadline):
                time.sleep(max(0.0, min(RETRY_PAUSE_S, deadline - time.monotonic())))
    except Exception as e:  # noqa: BLE001 - a bug here must end the wait with a message, not hang it
        probe.failure = f"the check itself failed: {type(e).__name__}: {e}", "Please report this as a bug"
    finally:
        probe.done.set()


def wait_until_serving(urls: Sequence[str], headers: Mapping[str, str], connect_timeout_s: float,
                       ready_timeout_s: float) -> list[NotServing]:
    """GET every url (a `<base_url>/models`) until each answers 2xx; returns the ones that failed, in the order of
    `urls` (empty when all are up), as soon as every url answered or failed for good."""
    t0 = time.monotonic()
    deadline = t0 + ready_timeout_s
    probes = [_Probe(url) for url in urls]
    for probe in probes:
        threading.Thread(target=_wait_for, args=(probe, headers, connect_timeout_s, deadline), daemon=True,
                         name="server-ready-check").start()
    next_report = connect_timeout_s  # when the check gave up before ready_timeout_s existed
    give_up = ready_timeout_s + connect_timeout_s + 5.0  # our own bound, should a GET outlive its timeouts
    while pending := [p for p in probes if not p.done.is_set()]:
        elapsed = time.monotonic() - t0
        if elapsed >= give_up:
            for probe in pending:
                probe.timed_out = True
            break
        if elapsed >= next_report:
            log.warning("server busy, still waiting, %.0f s: GET %s has not answered; giving up after %g s "
                        "(llm.ready_timeout_s)", elapsed, ", ".join(p.waiting_for() for p in pending),
                        ready_timeout_s)
            next_report += PROGRESS_EVERY_S
        pending[0].done.wait(timeout=max(0.01, min(next_report, give_up) - elapsed))
    failed = []
    for p in probes:
        if p.timed_out:
            last = f" (last: {p.last_state})" if p.last_state else ""
            failed.append(NotServing(p.url, f"no answer within {ready_timeout_s:g} s{last}", WAIT_FIX))
        elif p.failure is not None:
            failed.append(NotServing(p.url, *p.failure))
    return failed


def describe(failed: Sequence[NotServing]) -> str:
    """`GET url: problem` for each, then each distinct fix once."""
    problems = "; ".join(f"GET {f.url}: {f.problem}" for f in failed)
    return f"{problems}. {' '.join(dict.fromkeys(f.fix.rstrip('.') + '.' for f in failed))}"
