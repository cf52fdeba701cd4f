"""The start-up check of llm=openai_compatible and llm=pool: a dead or refusing server fails at once, a busy one is
waited for (tacos.llm.serving.readiness), on the stub server."""
from __future__ import annotations

import logging
import socket
import time

import pytest
from stub_server import StubServer

from tacos.llm.serving import readiness
from tacos.llm.serving.process import free_port
from tacos.llm.calling.providers import EndpointPool, OpenAICompatible

BUSY_LINE = "server busy, still waiting"


def compatible(url: str, **kw) -> OpenAICompatible:
    return OpenAICompatible(base_url=url, model="stub", **kw)


def test_a_slow_models_answer_is_waited_for_and_reported(caplog):
    """/models answering after 8 s (a llama-cpp-python busy with queued completions): the run waits, says so."""
    caplog.set_level(logging.WARNING, logger="tacos.llm.serving.readiness")
    with StubServer(models_delay=8.0) as stub:
        t0 = time.monotonic()
        endpoint = compatible(stub.base_url).start()
        waited = time.monotonic() - t0
        print(f"slow /models: started after {waited:.1f} s")
        assert endpoint.base_url == stub.base_url and 7.5 < waited < 12
        lines = [r.getMessage() for r in caplog.records if BUSY_LINE in r.getMessage()]
        assert lines and lines[0].startswith(f"{BUSY_LINE}, 5 s: GET {stub.base_url}/models")
        assert "llm.ready_timeout_s" in lines[0]
        assert stub.models_asked == 1  # one GET kept open, not asked again behind newer requests


def test_progress_lines_come_about_every_period(caplog, monkeypatch):
    monkeypatch.setattr(readiness, "PROGRESS_EVERY_S", 0.5)
    caplog.set_level(logging.WARNING, logger="tacos.llm.serving.readiness")
    with StubServer(models_delay=2.2) as stub:
        compatible(stub.base_url, check_timeout_s=0.5).start()
    seconds = [r.args[0] for r in caplog.records if BUSY_LINE in r.getMessage()]
    assert len(seconds) >= 3 and seconds == sorted(seconds) and seconds[0] >= 0.5


def test_a_refused_port_fails_at_once():
    url = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="Connection refused") as info:
        compatible(url).start()
    assert time.monotonic() - t0 < 2
    message = str(info.value)
    assert f"{url}/models" in message and "llm.base_url" in message and "/v1" in message


def test_an_unknown_host_fails_at_once(monkeypatch):
    def no_such_host(*args, **kw):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="Name or service not known.*llm.base_url"):
        compatible("http://gpu-that-does-not-exist:8000/v1").start()
    assert time.monotonic() - t0 < 2


@pytest.mark.parametrize("status, hint", [(401, "llm.api_key_env"), (403, "llm.api_key_env"),
                                          (404, "must be the API root ending with /v1")])
def test_refusals_fail_at_once_and_say_what_to_check(status, hint):
    with StubServer(models_faults=[status]) as stub:
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=f"HTTP {status}") as info:
            compatible(stub.base_url, ready_timeout_s=60).start()
        assert time.monotonic() - t0 < 2 and stub.models_asked == 1
    assert hint in str(info.value)


def test_a_server_still_loading_is_asked_again(monkeypatch):
    monkeypatch.setattr(readiness, "RETRY_PAUSE_S", 0.05)
    with StubServer(models_faults=[503, 503]) as stub:
        compatible(stub.base_url).start()
        assert stub.models_asked == 3


def test_the_wait_ends_at_ready_timeout_with_what_to_do():
    with StubServer(models_delay=5.0) as stub:
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=r"no answer within 1 s\. .*llm.ready_timeout_s=SECONDS"):
            compatible(stub.base_url, check_timeout_s=0.5, ready_timeout_s=1).start()
        assert time.monotonic() - t0 < 3


def test_a_server_that_keeps_answering_503_times_out(monkeypatch):
    monkeypatch.setattr(readiness, "RETRY_PAUSE_S", 0.05)
    with StubServer(models_faults=[503] * 1000) as stub:
        with pytest.raises(RuntimeError, match=r"no answer within 1 s \(last: HTTP 503\)"):
            compatible(stub.base_url, check_timeout_s=0.5, ready_timeout_s=1).start()


def test_timeouts_must_be_positive():
    with pytest.raises(ValueError, match="ready_timeout_s"):
        compatible("http://127.0.0.1:9/v1", ready_timeout_s=0)


# ---- llm=pool --------------------------------------------------------------------------------------------------

def test_a_pool_waits_for_its_busy_member(caplog):
    caplog.set_level(logging.WARNING, logger="tacos.llm.serving.readiness")
    with StubServer() as quick, StubServer(models_delay=1.5) as busy:
        urls = [quick.base_url, busy.base_url]
        endpoints = EndpointPool(model="stub", endpoints=urls, check_timeout_s=1).start()
    assert [ep.base_url for ep in endpoints] == urls
    (line,) = [r.getMessage() for r in caplog.records if BUSY_LINE in r.getMessage()]
    assert f"{urls[1]}/models" in line and f"{urls[0]}/models" not in line


def test_a_pool_names_only_the_members_that_refuse():
    with StubServer() as live, StubServer(models_faults=[401]) as locked:
        dead = f"http://127.0.0.1:{free_port()}/v1"
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match="2 of the 3 endpoints") as info:
            EndpointPool(model="m", endpoints=[live.base_url, locked.base_url, dead]).start()
        assert time.monotonic() - t0 < 2
        message = str(info.value)
        assert f"{locked.base_url}/models: HTTP 401" in message and f"{dead}/models: cannot connect" in message
        assert f"{live.base_url}/models" not in message
