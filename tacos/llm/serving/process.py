"""Child server processes that never outlive us.

Three layers make sure a server we start is gone when we are:
  * normal exit, exceptions, Ctrl-C (KeyboardInterrupt) and SIGTERM (turned into SystemExit here) run `finally`
    blocks and atexit, which call `ServerProcess.stop()`;
  * `stop()` signals the child's whole process group (it runs in its own session, so a terminal's Ctrl-C does not
    hit it half-way through our own shutdown), SIGTERM first, SIGKILL after a grace period;
  * kill -9 of our process: the kernel sends the child SIGKILL (PR_SET_PDEATHSIG).

Readiness is checked on 127.0.0.1 without any http(s)_proxy, and, given `expect_model`, only a server that lists
exactly that model id counts as ours (callers put a random nonce into the alias they serve). `free_port()` releases
its port before the child binds it, so another process can win the port in between: `wait_ready` then raises
`PortTaken` (our child exited while someone else holds the port, or a server that is not ours answers there) and the
caller retries on a new port.
"""
from __future__ import annotations

import atexit
import ctypes
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
EXIT_PORT_TAKEN = 98  # errno EADDRINUSE: what tacos.llm.serving.llama_server_child exits with when its port was taken
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded in the parent: the forked child must only make the call
_LIVE: set["ServerProcess"] = set()
_LIVE_LOCK = threading.Lock()


def free_port() -> int:
    """A loopback TCP port that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_taken(port: int) -> bool:
    """True if another socket is listening on (or bound to) 127.0.0.1:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers of our own probes don't count
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


class PortTaken(RuntimeError):
    """Another process holds the port we gave our server (we lost the race after free_port()): retry elsewhere."""


def _die_with_parent(parent_pid: int) -> None:
    """preexec_fn: ask the kernel for SIGKILL when the parent dies; if it already died, do not start at all.

    SIGKILL, not SIGTERM: uvicorn answers SIGTERM with a graceful shutdown that waits for the request in flight,
    and a busy llama.cpp generation then outlives its owner by minutes (seen here)."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


def _sigterm_to_system_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _install_sigterm_handler() -> None:
    # Only where nobody installed their own handler, and only from the main thread (Python's rule).
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_to_system_exit)


def stop_all() -> None:
    """Stop every server this process started (registered with atexit)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        proc.stop()


atexit.register(stop_all)


def tail(path: Path, n_lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16_384))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-n_lines:])
    except OSError:
        return "(no log)"


def _opener(use_proxy: bool) -> urllib.request.OpenerDirector:
    # An explicit empty ProxyHandler replaces the default one, which would read http(s)_proxy from the environment.
    return urllib.request.build_opener(*([] if use_proxy else [urllib.request.ProxyHandler({})]))


def http_ok(url: str, timeout_s: float, headers: dict[str, str] | None = None, use_proxy: bool = False) -> bool:
    """True if GET url answers 2xx within timeout_s."""
    try:
        with _opener(use_proxy).open(urllib.request.Request(url, headers=headers or {}), timeout=timeout_s) as r:
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def served_models(url: str, timeout_s: float) -> list[str] | None:
    """The model ids a GET of an OpenAI `/v1/models` url lists (never through a proxy); None while it does not
    answer 2xx (not up yet, still loading: 503), [] for a 2xx body that is no model list."""
    try:
        with _opener(False).open(urllib.request.Request(url), timeout=timeout_s) as r:
            if not 200 <= r.status < 300:
                return None
            body = r.read(1 << 20)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    try:
        data = json.loads(body).get("data")
        return [str(m.get("id")) for m in data if isinstance(m, dict)] if isinstance(data, list) else []
    except (ValueError, AttributeError):
        return []


class ServerProcess:
    """One child server: spawn, wait until GET `ready_url` answers, stop. stop() is idempotent."""

    def __init__(self, cmd: Sequence[str], log_path: Path, name: str = "server", env: dict[str, str] | None = None):
        self.cmd = [str(c) for c in cmd]
        self.log_path = Path(log_path)
        self.name = name
        self.env = env
        self._proc: subprocess.Popen | None = None
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def spawn(self) -> "ServerProcess":
        if self._proc is not None:
            raise RuntimeError(f"{self.name} was already spawned (pid {self._proc.pid})")
        _install_sigterm_handler()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        parent = os.getpid()
        with open(self.log_path, "ab") as logf:
            logf.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.cmd)}\n".encode())
            logf.flush()
            # Note: PDEATHSIG fires when the *thread* that forked exits, so spawn from a long-lived thread.
            self._proc = subprocess.Popen(
                self.cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                env={**os.environ, **self.env} if self.env else None,
                start_new_session=True, preexec_fn=lambda: _die_with_parent(parent))
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    def wait_ready(self, ready_url: str, timeout_s: float, poll_s: float = 0.2, expect_model: str | None = None,
                   port: int | None = None) -> float:
        """Poll `ready_url` until it answers 2xx; returns seconds waited. Stops the child and raises on failure.

        With `expect_model` (`ready_url` is then a /v1/models URL) the answer must list exactly that model id, so a
        server that is not ours is never taken for ours. PortTaken (after stopping the child) when another process
        holds `port`: our child exited while the port is taken, or a server with other models answers."""
        t0 = time.monotonic()
        probe_s = min(2.0, max(0.1, timeout_s))
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc else None
                self.stop()
                message = (f"{self.name} exited with code {code} before it was ready. Last lines of "
                           f"{self.log_path}:\n{tail(self.log_path)}")
                if port is not None and (code == EXIT_PORT_TAKEN or port_taken(port)):
                    raise PortTaken(f"port {port} is taken by another process; {message}")
                raise RuntimeError(message)
            if expect_model is None:
                if http_ok(ready_url, timeout_s=probe_s):
                    return time.monotonic() - t0
            else:
                models = served_models(ready_url, timeout_s=probe_s)
                if models == [expect_model]:
                    return time.monotonic() - t0
                if models is not None:
                    self.stop()
                    raise PortTaken(f"a server that is not {self.name} (pid {self.pid}) answers {ready_url}: it "
                                    f"lists the models {models}, not exactly [{expect_model!r}]")
            if time.monotonic() - t0 > timeout_s:
                self.stop()
                raise TimeoutError(
                    f"{self.name} did not answer GET {ready_url} within {timeout_s:.0f} s (raise llm.startup_timeout_s "
                    f"if the machine is slow). Last lines of {self.log_path}:\n{tail(self.log_path)}")
            time.sleep(poll_s)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, wait up to grace_s, then SIGKILL. Safe to call any number of times."""
        proc = self._proc
        if proc is None or self._stopped:
            return
        pgid = proc.pid  # start_new_session: the child leads its own group
        if proc.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored SIGTERM for %.0f s; sending SIGKILL", self.name, proc.pid, grace_s)
        # Also reaps grandchildren left in the group after the leader exited (e.g. vLLM engine workers).
        _signal_group(pgid, signal.SIGKILL)
        proc.wait()
        # Marked stopped only now: if a second Ctrl-C interrupts the wait above, atexit tries again.
        self._stopped = True
        with _LIVE_LOCK:
            _LIVE.discard(self)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
