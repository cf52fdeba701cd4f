"""One LLMClient over several OpenAI-compatible endpoints (llm=pool): spread, per-endpoint limits, failover, cache."""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from conftest import REPO, run_cli
from stub_server import StubServer, default_responder
from tacos_responder import tacos_responder

from tacos.llm.calling.cache import CallCache
from tacos.llm.calling.client import LLMClient
from tacos.llm.calling.dispatch import split_concurrency as _split
from tacos.llm.calling.types import LLMRequest
from tacos.llm.calling.types import Endpoint
from tacos.llm.calling.providers import EndpointPool, OpenAICompatible
from tacos.llm.calling.parsing import extract_json
from tacos.llm.serving.process import free_port
from tacos.llm.calling.session import LLMSession

PROMPT_HASH = "0" * 64
IDENTITY = "openai_compatible:stub-model"


def make_requests(n: int, start: int = 0) -> list[LLMRequest]:
    return [LLMRequest(messages=(("user", f"question {i}"),), prompt_hash=PROMPT_HASH, label=f"q{i}")
            for i in range(start, start + n)]


def endpoint(url: str, limit: int = 2, identity: str = IDENTITY, **kw) -> Endpoint:
    return Endpoint(base_url=url, model="stub-model", identity=identity, max_concurrency=limit, **kw)


def make_client(endpoints, cache_dir: Path, **kw) -> LLMClient:
    kw = {"progress": False, "backoff_base": 0.001, "backoff_max": 0.01, "timeout": 5.0, **kw}
    return LLMClient(endpoints, CallCache(cache_dir), **kw)


class Gauge:
    """A responder that sleeps and records the most requests it was answering at once."""

    def __init__(self, delay: float):
        self.delay = delay
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict) -> str:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            return default_responder(body)
        finally:
            with self._lock:
                self.in_flight -= 1


@pytest.fixture
def two_stubs():
    with StubServer() as a, StubServer() as b:
        yield a, b


def test_calls_are_spread_over_both_endpoints(two_stubs, tmp_path, caplog):
    a, b = two_stubs
    client = make_client([endpoint(a.base_url), endpoint(b.base_url)], tmp_path)
    assert client.max_concurrency == 4 and client.endpoint_limits == [2, 2]
    with caplog.at_level(logging.INFO, logger="tacos.llm.calling.client"):
        results = client.run(make_requests(20), extract_json)
    assert [r.parsed["echo"] for r in results] == [f"question {i}" for i in range(20)]  # input order
    assert all(r.status == "ok" for r in results)
    assert a.count >= 4 and b.count >= 4 and a.count + b.count == 20
    assert client.calls_per_endpoint == {a.base_url: a.count, b.base_url: b.count}
    assert client.failures_per_endpoint == {a.base_url: 0, b.base_url: 0}
    assert client.stats.backend_requests == 20 and client.stats.ok == 20
    assert any("requests per endpoint" in r.getMessage() for r in caplog.records)


def test_sequential_calls_alternate(two_stubs, tmp_path):
    a, b = two_stubs
    client = make_client([endpoint(a.base_url), endpoint(b.base_url)], tmp_path, max_concurrency=1)
    client.run(make_requests(6), extract_json)
    assert (a.count, b.count) == (3, 3)  # ties (all slots free) go round robin


def test_per_endpoint_concurrency_is_never_exceeded(tmp_path):
    gauge_a, gauge_b = Gauge(0.04), Gauge(0.04)
    with StubServer(responder=gauge_a) as a, StubServer(responder=gauge_b) as b:
        client = make_client([endpoint(a.base_url, limit=3), endpoint(b.base_url, limit=1)], tmp_path)
        assert client.max_concurrency == 4
        client.run(make_requests(24), extract_json)
        assert gauge_a.max_in_flight == 3 and gauge_b.max_in_flight == 1
        assert a.max_in_flight == 3 and b.max_in_flight == 1
        assert a.count > b.count > 0  # the bigger endpoint takes the bigger share


def test_explicit_client_concurrency_is_split_over_the_endpoints(tmp_path):
    assert _split(12, [32, 16]) == [8, 4] and _split(5, [1, 1]) == [3, 2] and _split(1, [4, 4]) == [1, 1]
    assert _split(4, [100, 1, 1]) == [2, 1, 1] and _split(3, [1]) == [3]
    gauge_a, gauge_b = Gauge(0.03), Gauge(0.03)
    with StubServer(responder=gauge_a) as a, StubServer(responder=gauge_b) as b:
        client = make_client([endpoint(a.base_url, limit=8), endpoint(b.base_url, limit=8)], tmp_path,
                             max_concurrency=4)
        assert (client.max_concurrency, client.endpoint_limits) == (4, [2, 2])
        client.run(make_requests(16), extract_json)
        assert gauge_a.max_in_flight <= 2 and gauge_b.max_in_flight <= 2
        assert gauge_a.max_in_flight + gauge_b.max_in_flight >= 3


def test_slow_endpoint_gets_fewer_calls(tmp_path):
    slow, fast = Gauge(0.15), Gauge(0.005)
    with StubServer(responder=slow) as a, StubServer(responder=fast) as b:
        client = make_client([endpoint(a.base_url), endpoint(b.base_url)], tmp_path)
        client.run(make_requests(30), extract_json)
        assert b.count > 2 * a.count


def test_dead_endpoint_calls_still_succeed_and_failures_are_counted(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with StubServer() as live:
        client = make_client([endpoint(dead), endpoint(live.base_url)], tmp_path, max_retries=2)
        results = client.run(make_requests(12), extract_json)
        assert all(r.status == "ok" for r in results) and live.count == 12
        failures = client.failures_per_endpoint[dead]
        assert failures >= 1 and client.calls_per_endpoint[dead] == failures
        assert client.failures_per_endpoint[live.base_url] == 0
        assert client.stats.retries == failures and client.stats.backend_requests == 12 + failures
        assert client.stats.errors == 0


def test_endpoint_answering_500_fails_over_to_the_other(tmp_path):
    with StubServer(faults=["500"] * 100) as broken, StubServer() as live:
        client = make_client([endpoint(broken.base_url), endpoint(live.base_url)], tmp_path, max_retries=1)
        results = client.run(make_requests(10), extract_json)
        assert all(r.status == "ok" for r in results) and live.count == 10
        assert broken.count >= 1 and client.failures_per_endpoint[broken.base_url] == broken.count
        # with one retry allowed, every call that hit the broken endpoint first was retried on the live one
        assert all(r.attempts <= 2 for r in results)


def test_cache_keys_equal_a_single_endpoint_client(two_stubs, tmp_path):
    a, b = two_stubs
    pooled = make_client([endpoint(a.base_url), endpoint(b.base_url)], tmp_path)
    first = pooled.run(make_requests(8), extract_json)
    sent = a.count + b.count
    assert sent == 8
    with StubServer() as single_stub:
        single = make_client(endpoint(single_stub.base_url), tmp_path)
        second = single.run(make_requests(8), extract_json)
        assert single_stub.count == 0 and single.stats.calls == 0 and single.stats.cache_hits == 8
    assert [r.key for r in first] == [r.key for r in second]
    assert [r.parsed for r in first] == [r.parsed for r in second]
    assert a.count + b.count == sent


def test_endpoints_of_one_client_must_share_the_identity(two_stubs, tmp_path):
    a, b = two_stubs
    with pytest.raises(ValueError, match="same model"):
        make_client([endpoint(a.base_url), endpoint(b.base_url, identity="openai_compatible:other")], tmp_path)
    with pytest.raises(ValueError, match="at least one endpoint"):
        make_client([], tmp_path)


# ---- the provider -------------------------------------------------------------------------------------------

def test_pool_provider_identity_prices_and_start(two_stubs):
    a, b = two_stubs
    pool = EndpointPool(model="stub-model", endpoints=[{"base_url": a.base_url + "/", "max_concurrency": 5},
                                                       b.base_url], max_concurrency=3, price_in_per_mtok=1.5)
    assert pool.identity == OpenAICompatible(base_url=a.base_url, model="stub-model", structured_output="json_schema").identity == IDENTITY
    assert str(a.port) not in pool.identity and pool.prices() == (1.5, 0.0)
    eps = pool.start()
    assert [(ep.base_url, ep.max_concurrency) for ep in eps] == [(a.base_url, 5), (b.base_url, 3)]
    assert {ep.identity for ep in eps} == {IDENTITY} and all(ep.price_in_per_mtok == 1.5 for ep in eps)


def test_pool_provider_errors():
    with pytest.raises(ValueError, match="non-empty list of endpoints"):
        EndpointPool(model="m", endpoints=[])
    with pytest.raises(ValueError, match="unknown key"):
        EndpointPool(model="m", endpoints=[{"base_url": "http://x/v1", "model": "y"}])
    with pytest.raises(ValueError, match="more than once"):
        EndpointPool(model="m", endpoints=["http://x/v1", "http://x/v1/"])
    with StubServer() as live:
        dead = f"http://127.0.0.1:{free_port()}/v1"
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=f"1 of the 2 .*{dead}/models") as info:
            EndpointPool(model="m", endpoints=[live.base_url, dead], check_timeout_s=2).start()
        assert live.base_url not in str(info.value) and time.monotonic() - t0 < 3


def test_pool_config_instantiates_from_hydra(two_stubs):
    a, b = two_stubs
    with initialize_config_dir(version_base=None, config_dir=str(REPO / "conf")):
        cfg = compose(overrides=["+llm=pool", "llm.model=stub-model",
                                 f"llm.endpoints=[{{base_url: '{a.base_url}', max_concurrency: 2}}, '{b.base_url}']"])
    pool = instantiate(cfg.llm, _convert_="all")
    assert isinstance(pool, EndpointPool) and pool.members == [(a.base_url, 2), (b.base_url, 16)]


def test_session_passes_the_pool_to_the_client(two_stubs, tmp_path):
    a, b = two_stubs
    pool = EndpointPool(model="stub-model", endpoints=[a.base_url, b.base_url], max_concurrency=2)
    session = LLMSession(pool, tmp_path, {"progress": False}, max_usd=None)
    try:
        results = session.run(make_requests(10), extract_json, desc="pool")
        assert all(r.status == "ok" for r in results) and a.count > 0 and b.count > 0
        assert session._client.calls_per_endpoint == {a.base_url: a.count, b.base_url: b.count}
        assert session.stats.calls == 10
    finally:
        session.close()


# ---- through run.py -----------------------------------------------------------------------------------------

def test_pool_through_hydra_cli(tmp_path):
    with StubServer(responder=tacos_responder) as a, StubServer(responder=tacos_responder) as b:
        run_dir = tmp_path / "run"
        out = run_cli(["llm=pool", "llm.model=stub-judge",
                       (f"llm.endpoints=[{{base_url: '{a.base_url}', max_concurrency: 2}}, "
                        f"{{base_url: '{b.base_url}', max_concurrency: 2}}]"),
                       "stages=[data,clean,tag]", "dataset.limit=6", "logger=none", "client.backoff_base=0.01",
                       f"paths.output_dir={tmp_path / 'outputs'}", f"hydra.run.dir={run_dir}"], timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        manifest = json.loads((run_dir / "tag" / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["llm"]["calls"] == 6
        assert a.count > 0 and b.count > 0 and a.count + b.count == 6
