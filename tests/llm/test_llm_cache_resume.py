"""CallCache persistence and thread safety; kill -9 in the middle of a run resumes without re-asking answered calls."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stub_server import StubServer  # noqa: E402

from tacos.llm.calling.cache import CACHE_FILENAME, CallCache  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "_resume_worker.py"
STUB = REPO / "tests" / "stub_server.py"


def put(cache: CallCache, key: str, **kw) -> None:
    entry = {"identity": "m", "prompt_hash": "h", "request": {"messages": [["user", key]]}, "raw": f"raw {key}",
             "parsed": {"k": key}, "status": "ok", "error": None, "attempts": 1, "prompt_tokens": 3,
             "completion_tokens": 4, "logprobs": None}
    cache.put(key, **{**entry, **kw})


def test_put_get_roundtrip_and_reopen(tmp_path):
    cache = CallCache(tmp_path)
    assert cache.get("a") is None and len(cache) == 0
    put(cache, "a", logprobs=[{"token": "x", "logprob": -0.1, "top_logprobs": []}])
    put(cache, "b", status="invalid", parsed=None, error="ParseError: nope", attempts=3)
    cache.close()

    reopened = CallCache(tmp_path)
    assert (tmp_path / CACHE_FILENAME).exists() and len(reopened) == 2
    a, b = reopened.get("a"), reopened.get("b")
    assert a["parsed"] == {"k": "a"} and a["raw"] == "raw a" and a["request"] == {"messages": [["user", "a"]]}
    assert a["logprobs"][0]["token"] == "x" and (a["prompt_tokens"], a["completion_tokens"]) == (3, 4)
    assert b["status"] == "invalid" and b["parsed"] is None and b["attempts"] == 3 and b["error"] == "ParseError: nope"
    put(reopened, "b")  # a retried invalid call replaces its row
    assert reopened.get("b")["status"] == "ok" and len(reopened) == 2
    reopened.close()


def test_transport_errors_are_refused(tmp_path):
    with CallCache(tmp_path) as cache, pytest.raises(ValueError, match="only answered calls"):
        put(cache, "a", status="error")


def test_concurrent_puts_from_threads(tmp_path):
    cache = CallCache(tmp_path)
    threads = [threading.Thread(target=lambda t=t: [put(cache, f"{t}-{i}") for i in range(50)]) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 400 and cache.get("7-49")["parsed"] == {"k": "7-49"}


def run_worker(base_url: str, cache_dir: Path, n: int, concurrency: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), "--base-url", base_url, "--cache-dir", str(cache_dir),
                             "--n", str(n), "--concurrency", str(concurrency)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def test_kill_9_midway_then_resume(tmp_path):
    n, concurrency = 40, 3
    with StubServer(delay=0.15) as stub:
        worker = run_worker(stub.base_url, tmp_path, n, concurrency)
        watcher = CallCache(tmp_path)
        deadline = time.monotonic() + 30
        while len(watcher) < 10:
            assert worker.poll() is None, f"worker ended early: {worker.communicate()}"
            assert time.monotonic() < deadline, "worker made no progress"
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        time.sleep(0.3)  # let the stub finish the requests that were in flight
        answered = len(watcher)
        sent_before = stub.count
        assert answered < n and sent_before - answered <= concurrency  # in flight at the kill

        resumed = run_worker(stub.base_url, tmp_path, n, concurrency)
        out, err = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, err
        summary = json.loads(out)
        assert summary["statuses"] == ["ok"] * n
        assert summary["echo"] == [f"resume item {i}" for i in range(n)]
        assert summary["cache_hits"] == answered and summary["calls"] == n - answered
        assert stub.count <= n + concurrency
        assert stub.count == sent_before + (n - answered)  # no answered call was asked again
        assert len(watcher) == n
        watcher.close()


def test_stub_server_as_subprocess(tmp_path):
    port_file, log_file = tmp_path / "port", tmp_path / "requests.log"
    server = subprocess.Popen([sys.executable, str(STUB), "--port-file", str(port_file), "--log", str(log_file)])
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert server.poll() is None and time.monotonic() < deadline, "stub subprocess did not start"
            time.sleep(0.02)
        base_url = f"http://127.0.0.1:{port_file.read_text()}/v1"
        worker = run_worker(base_url, tmp_path / "cache", 5, 2)
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        assert json.loads(out)["statuses"] == ["ok"] * 5
        assert log_file.read_text().splitlines() == [f"REQUEST {i}" for i in range(1, 6)]
    finally:
        server.kill()
        server.wait()
