"""LLMClient against the stub server: cache, retries, faults, parse retries, concurrency, budget, request shapes."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from stub_server import MALFORMED_TEXT, StubServer, default_responder  # noqa: E402

from tacos.llm.calling.cache import CallCache  # noqa: E402
from tacos.llm.calling.client import LLMClient  # noqa: E402
from tacos.llm.calling.ledger import BudgetExceeded  # noqa: E402
from tacos.llm.calling.types import CallStats, LLMRequest, LLMResult  # noqa: E402
from tacos.llm.calling.wire import RETRY_MIN_TEMPERATURE  # noqa: E402
from tacos.llm.calling.types import Endpoint  # noqa: E402
from tacos.llm.calling.ledger import CostLedger  # noqa: E402
from tacos.llm.calling.parsing import ParseError, extract_json  # noqa: E402

PROMPT_HASH = "0" * 64
SCHEMA = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}


def make_requests(n: int, **kw) -> list[LLMRequest]:
    return [LLMRequest(messages=(("system", "You are a test."), ("user", f"question {i}")), prompt_hash=PROMPT_HASH,
                       label=f"q{i}", **kw) for i in range(n)]


def make_client(stub: StubServer, cache_dir: Path, ledger: CostLedger | None = None, endpoint_kw: dict | None = None,
                **kw) -> LLMClient:
    endpoint = Endpoint(base_url=stub.base_url, model="stub-model", identity="stub-model@test",
                        **(endpoint_kw or {}))
    kw = {"progress": False, "backoff_base": 0.001, "backoff_max": 0.01, "timeout": 5.0, **kw}
    return LLMClient(endpoint, CallCache(cache_dir), ledger, **kw)


def answers(results: list[LLMResult]) -> list[tuple]:
    return [(r.status, r.raw, r.parsed) for r in results]


@pytest.fixture
def stub():
    with StubServer() as server:
        yield server


@pytest.fixture(scope="module")
def clean_answers(tmp_path_factory) -> list[tuple]:
    with StubServer() as server:
        client = make_client(server, tmp_path_factory.mktemp("clean"))
        return answers(client.run(make_requests(4), extract_json))


# ---- cache ------------------------------------------------------------------------------------------

def test_clean_run_then_second_run_sends_nothing(stub, tmp_path, clean_answers):
    client = make_client(stub, tmp_path)
    first = client.run(make_requests(4), extract_json)
    assert answers(first) == clean_answers
    assert [r.parsed["echo"] for r in first] == [f"question {i}" for i in range(4)]
    assert all(r.status == "ok" and not r.cached and r.attempts == 1 for r in first)
    assert (client.stats.calls, client.stats.backend_requests, client.stats.ok, client.stats.cache_hits) == (4, 4, 4, 0)
    assert client.stats.prompt_tokens > 0 and client.stats.completion_tokens > 0
    assert stub.count == 4

    again = make_client(stub, tmp_path)  # a new process would see the same: the cache is on disk
    second = again.run(make_requests(4), extract_json)
    assert stub.count == 4
    assert answers(second) == clean_answers
    assert all(r.cached for r in second)
    assert [(r.prompt_tokens, r.completion_tokens, r.attempts) for r in second] == \
           [(r.prompt_tokens, r.completion_tokens, r.attempts) for r in first]
    assert (again.stats.calls, again.stats.backend_requests, again.stats.cache_hits, again.stats.ok) == (0, 0, 4, 4)


def test_cache_stores_the_whole_call(stub, tmp_path):
    client = make_client(stub, tmp_path)
    request = make_requests(1)[0]
    result = client.run([request], extract_json)[0]
    entry = client.cache.get(result.key)
    assert entry["raw"] == result.raw and entry["parsed"] == result.parsed and entry["status"] == "ok"
    assert entry["identity"] == "stub-model@test" and entry["prompt_hash"] == PROMPT_HASH
    assert entry["request"]["messages"] == [list(m) for m in request.messages]
    assert entry["request"]["label"] == "q0" and entry["attempts"] == 1 and entry["error"] is None
    assert (entry["prompt_tokens"], entry["completion_tokens"]) == (result.prompt_tokens, result.completion_tokens)


def test_repeated_request_in_one_batch_is_sent_once(stub, tmp_path):
    client = make_client(stub, tmp_path)
    request = make_requests(1)[0]
    results = client.run([request, request], extract_json)
    assert stub.count == 1
    assert [r.cached for r in results] == [False, True] and results[0].parsed == results[1].parsed
    assert (client.stats.calls, client.stats.cache_hits, client.stats.ok) == (1, 1, 2)


def test_parsed_value_is_json_round_tripped_so_cache_equals_fresh(stub, tmp_path):
    def pair(text: str) -> tuple:
        return (extract_json(text)["n"], "x")

    fresh = make_client(stub, tmp_path).run(make_requests(2), pair)
    cached = make_client(stub, tmp_path).run(make_requests(2), pair)
    assert [r.parsed for r in fresh] == [r.parsed for r in cached]
    assert isinstance(fresh[0].parsed, list)
    # The wall time is read once: a re-run's seconds-per-1000 equal the first run's (judge-eval compares them).
    assert [r.latency_s for r in fresh] == [r.latency_s for r in cached] and fresh[0].latency_s > 0


# ---- transport faults ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["429", "500", "timeout", "truncated", "disconnect", "html"])
def test_transport_faults_are_retried_to_the_clean_answer(tmp_path, clean_answers, fault):
    with StubServer(faults=[fault, fault], timeout_sleep=1.0) as stub:
        client = make_client(stub, tmp_path, max_concurrency=1, timeout=0.3)
        results = client.run(make_requests(4), extract_json)
        assert answers(results) == clean_answers
        assert stub.count == 4 + 2  # exactly one extra request per injected fault
        assert stub.faults_served[:2] == [fault, fault]
        assert [r.attempts for r in results] == [3, 1, 1, 1]
        s = client.stats
        assert (s.calls, s.backend_requests, s.retries, s.ok, s.errors) == (4, 6, 2, 4, 0)


def test_malformed_answer_is_regenerated_with_new_seed_and_temperature(tmp_path, clean_answers):
    with StubServer(faults=["malformed"]) as stub:
        client = make_client(stub, tmp_path, max_concurrency=1)
        results = client.run(make_requests(4), extract_json)
        assert answers(results) == clean_answers
        assert stub.count == 5 and results[0].attempts == 2
        first, retry = stub.requests[0], stub.requests[1]
        assert (first["seed"], first["temperature"]) == (0, 0.0)
        # greedy decoding would repeat itself: the retry changes the seed and samples
        assert (retry["seed"], retry["temperature"]) == (1, RETRY_MIN_TEMPERATURE)
        assert retry["messages"] == first["messages"]
        # both generations were billed
        assert results[0].completion_tokens > results[1].completion_tokens


def test_unparsable_after_retries_is_invalid_with_raw_kept_and_cached(stub, tmp_path):
    stub.responder = lambda body: "I refuse to answer in JSON."
    client = make_client(stub, tmp_path, parse_retries=2)
    results = client.run(make_requests(3), extract_json)
    assert stub.count == 3 * 3
    for r in results:
        assert r.status == "invalid" and r.parsed is None and r.raw == "I refuse to answer in JSON."
        assert r.attempts == 3 and r.error.startswith("ParseError")
    assert (client.stats.invalid, client.stats.ok, client.stats.calls, client.stats.retries) == (3, 0, 3, 6)
    assert len(client.cache) == 3

    again = make_client(stub, tmp_path)
    assert [r.status for r in again.run(make_requests(3), extract_json)] == ["invalid"] * 3
    assert stub.count == 9 and again.stats.invalid == 3 and again.stats.cache_hits == 3

    stub.responder = default_responder  # e.g. a better prompt-following model behind the same identity
    retried = make_client(stub, tmp_path, retry_invalid=True).run(make_requests(3), extract_json)
    assert stub.count == 12 and all(r.status == "ok" and not r.cached for r in retried)
    assert make_client(stub, tmp_path).run(make_requests(3), extract_json)[0].status == "ok"


def test_client_error_status_is_not_retried_and_not_cached(tmp_path):
    with StubServer(faults=["400"]) as stub:
        client = make_client(stub, tmp_path, max_concurrency=1)
        results = client.run(make_requests(2), extract_json)
        assert results[0].status == "error" and "400" in results[0].error and results[0].parsed is None
        assert results[0].attempts == 1 and results[1].status == "ok"
        assert stub.count == 2 and len(client.cache) == 1
        assert (client.stats.errors, client.stats.ok) == (1, 1)
        rerun = make_client(stub, tmp_path).run(make_requests(2), extract_json)
        assert [r.status for r in rerun] == ["ok", "ok"] and stub.count == 3  # only the failed call again


def test_transport_gives_up_after_max_retries(tmp_path):
    with StubServer(faults=["500"] * 3) as stub:
        client = make_client(stub, tmp_path, max_retries=2)
        result = client.run(make_requests(1), extract_json)[0]
        assert result.status == "error" and "500" in result.error and "3 requests" in result.error
        assert result.attempts == 3 and stub.count == 3 and len(client.cache) == 0
        assert (client.stats.errors, client.stats.backend_requests, client.stats.retries) == (1, 3, 2)


def test_parser_bug_propagates_instead_of_marking_invalid(stub, tmp_path):
    def buggy(text: str) -> dict:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        make_client(stub, tmp_path).run(make_requests(2), buggy)


# ---- concurrency and order ---------------------------------------------------------------------------

@pytest.mark.parametrize("limit, endpoint_limit", [(3, 1), (None, 2)])
def test_concurrency_is_bounded(tmp_path, limit, endpoint_limit):
    with StubServer(delay=0.05) as stub:
        client = make_client(stub, tmp_path, max_concurrency=limit, endpoint_kw={"max_concurrency": endpoint_limit})
        client.run(make_requests(12), extract_json)
        assert stub.max_in_flight == (limit or endpoint_limit)


def test_results_come_back_in_input_order(tmp_path):
    def slow_first(body: dict) -> str:
        time.sleep(0.2 if body["messages"][-1]["content"] == "question 0" else 0.0)
        return default_responder(body)

    with StubServer(responder=slow_first) as stub:
        results = make_client(stub, tmp_path, max_concurrency=4).run(make_requests(8), extract_json)
        assert [r.parsed["echo"] for r in results] == [f"question {i}" for i in range(8)]


# ---- budget and forecast -----------------------------------------------------------------------------

PRICED = {"price_in_per_mtok": 1000.0, "price_out_per_mtok": 2000.0}


@pytest.mark.parametrize("concurrency", [1, 3])
def test_budget_stops_before_exceeding_and_a_rerun_continues(tmp_path, concurrency):
    requests = make_requests(10, max_tokens=100)

    def long_answer(body: dict) -> str:  # ~90 completion tokens, so the actual cost is close to the estimate
        return json.dumps({"echo": body["messages"][-1]["content"], "pad": "x" * 360})

    with StubServer(responder=long_answer, delay=0.01) as stub:
        probe = make_client(stub, tmp_path, endpoint_kw=PRICED)
        estimate = probe.ledger.estimate(probe.endpoint, requests[0])[2]
        ledger = CostLedger(max_usd=3.5 * estimate)
        client = make_client(stub, tmp_path, ledger, endpoint_kw=PRICED, max_concurrency=concurrency)
        with pytest.raises(BudgetExceeded, match="budget"):
            client.run(requests, extract_json)
        answered = len(client.cache)
        assert 3 <= answered < 10 and stub.count == answered  # nothing sent without being answered and cached
        assert ledger.spent_usd <= ledger.max_usd and ledger.reserved_usd == pytest.approx(0.0)
        assert ledger.spent_usd + estimate > ledger.max_usd  # stopped only because the next call would exceed
        assert client.stats.cost_usd == pytest.approx(ledger.spent_usd)

        rerun = make_client(stub, tmp_path, CostLedger(max_usd=100 * estimate), endpoint_kw=PRICED)
        results = rerun.run(requests, extract_json)
        assert all(r.status == "ok" for r in results)
        assert stub.count == 10 and rerun.stats.calls == 10 - answered and rerun.stats.cache_hits == answered


def test_forecast_matches_what_run_does(stub, tmp_path):
    requests = make_requests(10, max_tokens=64)
    client = make_client(stub, tmp_path, CostLedger(), endpoint_kw=PRICED)
    client.run(requests[:4], extract_json)
    before, sent_before = dataclasses.replace(client.stats), stub.count
    batch = requests + [requests[7]]
    forecast = client.forecast(batch)
    assert stub.count == sent_before  # no backend call
    assert (forecast["calls"], forecast["cache_hits"]) == (6, 5)
    estimates = [client.ledger.estimate(client.endpoint, r) for r in requests[4:]]
    assert forecast["prompt_tokens"] == sum(e[0] for e in estimates)
    assert forecast["completion_tokens"] == 6 * 64
    assert forecast["usd"] == pytest.approx(sum(e[2] for e in estimates))

    client.run(batch, extract_json)
    share = client.stats - before
    assert (share.calls, share.cache_hits, share.backend_requests) == (forecast["calls"], forecast["cache_hits"], 6)
    assert stub.count - sent_before == forecast["calls"]
    assert 0 < share.cost_usd <= forecast["usd"]  # the estimate bounds the actual cost (completion = max_tokens)
    assert client.forecast(batch)["calls"] == 0


def test_ledger_arithmetic():
    ledger = CostLedger(max_usd=1.0)
    ledger.reserve(0.6)
    with pytest.raises(BudgetExceeded):
        ledger.reserve(0.5)
    ledger.settle(0.6, 0.2)
    ledger.reserve(0.8)
    assert ledger.summary() == {"spent_usd": 0.2, "reserved_usd": 0.8, "max_usd": 1.0, "remaining_usd": 0.8}
    unlimited = CostLedger()
    unlimited.reserve(1e9)
    assert unlimited.summary()["remaining_usd"] is None


# ---- request shapes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, expected", [
    ("llama_cpp", {"type": "json_object", "schema": SCHEMA}),
    ("json_schema", {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA, "strict": False}}),
    ("json_object", {"type": "json_object"}),
    ("none", None),
])
def test_structured_output_request_shape(stub, tmp_path, mode, expected):
    client = make_client(stub, tmp_path, endpoint_kw={"structured_output": mode, "extra_body": {"grammar": "g"}})
    client.run(make_requests(1, schema=SCHEMA) + make_requests(2)[1:], extract_json)
    with_schema, without_schema = stub.requests
    assert with_schema.get("response_format") == expected
    assert "response_format" not in without_schema  # no schema, no constraint
    assert with_schema["grammar"] == "g" and with_schema["model"] == "stub-model"
    assert (with_schema["max_tokens"], with_schema["top_p"], with_schema["seed"]) == (512, 1.0, 0)


def test_seed_none_is_not_sent(stub, tmp_path):
    make_client(stub, tmp_path).run(make_requests(1, seed=None), extract_json)
    assert "seed" not in stub.requests[0]


def test_unknown_structured_output_mode_fails_fast(stub, tmp_path):
    with pytest.raises(ValueError, match="structured_output"):
        make_client(stub, tmp_path, endpoint_kw={"structured_output": "xml"})


@pytest.mark.parametrize("supported", [True, False])
def test_logprobs(stub, tmp_path, supported):
    requests = make_requests(1, logprobs=3)
    result = make_client(stub, tmp_path, endpoint_kw={"supports_logprobs": supported}).run(requests, extract_json)[0]
    body = stub.requests[0]
    if supported:
        assert (body["logprobs"], body["top_logprobs"]) == (True, 3)
        assert "".join(t["token"] for t in result.logprobs) == result.raw
        assert all(len(t["top_logprobs"]) == 3 for t in result.logprobs)
        cached = make_client(stub, tmp_path, endpoint_kw={"supports_logprobs": supported}).run(requests, extract_json)
        assert cached[0].cached and cached[0].logprobs == result.logprobs
    else:
        assert "logprobs" not in body and result.logprobs is None


# ---- request keys and stats ---------------------------------------------------------------------------

def test_request_key():
    base = make_requests(1)[0]
    assert base.key("a") == dataclasses.replace(base, label="other").key("a")  # label is not in the key
    assert base.key("a") == dataclasses.replace(base, temperature=0, top_p=1).key("a")  # 0 == 0.0
    assert base.key("a") == LLMRequest(messages=[list(m) for m in base.messages], prompt_hash=PROMPT_HASH).key("a")
    for changed in (dataclasses.replace(base, prompt_hash="1" * 64), dataclasses.replace(base, seed=1),
                    dataclasses.replace(base, schema=SCHEMA), dataclasses.replace(base, logprobs=2),
                    dataclasses.replace(base, max_tokens=10), dataclasses.replace(base, temperature=0.5)):
        assert changed.key("a") != base.key("a")
    assert base.key("a") != base.key("b")  # another model identity


def test_request_validation():
    with pytest.raises(ValueError, match="prompt_hash"):
        LLMRequest(messages=(("user", "x"),), prompt_hash="")
    with pytest.raises(ValueError, match="role, content"):
        LLMRequest(messages=(("user", None),), prompt_hash="h")


def test_call_stats_add_and_subtract():
    a = CallStats(calls=3, cache_hits=1, cost_usd=0.5)
    b = CallStats(calls=1, cost_usd=0.25, seconds=2.0)
    assert (a + b) == CallStats(calls=4, cache_hits=1, cost_usd=0.75, seconds=2.0)
    assert (a - b) == CallStats(calls=2, cache_hits=1, cost_usd=0.25, seconds=-2.0)


def test_malformed_text_is_really_unparsable():
    with pytest.raises(ParseError):
        extract_json(MALFORMED_TEXT)
    assert json.loads(default_responder({"messages": [{"role": "user", "content": "x"}]}))["echo"] == "x"
