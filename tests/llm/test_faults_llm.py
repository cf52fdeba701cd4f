"""Project issue 12, item 2: a permanent error never blocks a stage forever.

* a prompt longer than the model's context (llama.cpp's HTTP 400) is an *invalid* call, cached, counted as
  `llm.too_long`: the stage completes without that row and a re-run does not ask again; taggers and scorers clip
  over-long texts so that such a prompt fits in the first place;
* 401/403/404 stop the stage at the first call, with one clear line;
* a reply cut at max_tokens is recorded (finish_reason, `llm.truncated`) and a parse error of it says so.
"""
from __future__ import annotations

import pytest
from stub_server import Scripted, StubServer
from tacos_responder import tacos_responder

from _faults_common import cache_rows, error_lines, llm_overrides, manifests, sample_rows, write_pool
from conftest import run_cli
from tacos.llm.calling.cache import CallCache
from tacos.llm.calling.client import LLMClient
from tacos.llm.calling.types import Endpoint
from tacos.llm.calling.parsing import extract_json
from tacos.llm.calling.types import LLMRequest, LLMUnavailable
from tacos.records import read_jsonl

CONTEXT_CHARS = 30_000  # the stub's "context": a clipped tagging (6000) or pair prompt (4 x 4000 + template) fits
STAGES = "stages=[data,clean,tag,normalize,cluster,score]"
SMALL = ["clustering.k=4", "scorer.n_boot=20", "scorer.rounds=1"]


def request(text: str, max_tokens: int = 64) -> LLMRequest:
    return LLMRequest(messages=(("user", text),), prompt_hash="f" * 64, max_tokens=max_tokens)


def client_for(stub: StubServer, tmp_path, monkeypatch=None, **kw) -> LLMClient:
    endpoint = Endpoint(base_url=stub.base_url, model="stub", identity="stub@faults",
                        api_key_env="STUB_KEY" if monkeypatch else None)
    if monkeypatch:
        monkeypatch.setenv("STUB_KEY", "not-a-key")
    return LLMClient(endpoint, CallCache(tmp_path / "cache"), progress=False, backoff_base=0.001, **kw)


# ---- the client ------------------------------------------------------------------------------------------------

def test_too_long_prompt_is_invalid_cached_and_never_sent_again(tmp_path):
    with StubServer(max_prompt_chars=100) as stub:
        with client_for(stub, tmp_path) as client:
            short, long_ = client.run([request("short"), request("x" * 500)], extract_json)
        assert short.status == "ok"
        assert long_.status == "invalid" and long_.error.startswith("input too long: HTTP 400")
        assert "exceeds the available context size" in long_.error
        assert client.stats.too_long == 1 and client.stats.errors == 0
        assert stub.count == 2  # not retried: the same prompt never fits
        with client_for(stub, tmp_path) as again:
            (cached,) = again.run([request("x" * 500)], extract_json)
        assert cached.cached and cached.status == "invalid" and stub.count == 2


@pytest.mark.parametrize("status", ["401", "403", "404"])
def test_refused_endpoint_stops_at_the_first_call(tmp_path, status, monkeypatch):
    with StubServer(faults=[status] * 50) as stub:
        with client_for(stub, tmp_path, monkeypatch, max_concurrency=1) as client:
            with pytest.raises(LLMUnavailable, match=f"HTTP {status}.*refuses calls.*STUB_KEY"):
                client.run([request(f"q{i}") for i in range(20)], extract_json)
        assert stub.count == 1 and len(client.cache) == 0


def test_truncated_reply_is_recorded_and_named(tmp_path):
    def responder(body):
        text = body["messages"][-1]["content"]
        if text == "cut-valid":
            return Scripted('{"a": 1}', finish_reason="length")
        if text == "cut-broken":
            return Scripted('{"a": [1, 2', finish_reason="length")
        return '{"a": 0}'

    with StubServer(responder=responder) as stub, client_for(stub, tmp_path, parse_retries=1) as client:
        ok, valid, broken = client.run([request("fine"), request("cut-valid", 7), request("cut-broken", 7)],
                                       extract_json)
        rows = {r["request"]["messages"][0][1]: r for r in cache_rows(tmp_path / "cache")}
    assert (ok.finish_reason, valid.finish_reason, broken.finish_reason) == ("stop", "length", "length")
    assert valid.status == "ok" and broken.status == "invalid"
    assert "cut at max_tokens=7" in broken.error and "finish_reason=length" in broken.error
    assert client.stats.truncated == 1 + 2  # the broken one was asked twice (parse_retries=1)
    assert {k: r["finish_reason"] for k, r in rows.items()} == {"fine": "stop", "cut-valid": "length",
                                                                 "cut-broken": "length"}


# ---- through run.py --------------------------------------------------------------------------------------------

def long_pool(tmp_path):
    """30 sample rows, one whose instruction alone is far longer than the context and one with a 900 KB response
    (under dataset.max_row_bytes, so the data stage takes both)."""
    rows = sample_rows(30)
    rows.append({"instruction": "Summarise this text: " + "lorem ipsum dolor " * 20_000, "input": "",
                 "output": "A very long text about nothing."})
    rows.append({"instruction": "Tell me everything you know.", "input": "",
                 "output": ("All I know, at length. " * 39_000).strip()})  # ~900 KB, ends with a stop (not "cut")
    return write_pool(tmp_path / "pool.jsonl", rows)


@pytest.mark.slow
def test_row_longer_than_the_context_through_tag_and_score(tmp_path):
    with StubServer(responder=tacos_responder, max_prompt_chars=CONTEXT_CHARS) as stub:
        base = [*llm_overrides(stub.base_url, tmp_path, long_pool(tmp_path)), STAGES, *SMALL, "share_outputs=false"]

        # Clipping on (the defaults): every prompt fits.
        clipped = run_cli([*base, f"hydra.run.dir={tmp_path / 'clipped'}"])
        assert clipped.returncode == 0, clipped.stderr[-3000:]
        m = manifests(tmp_path / "clipped")
        assert stub.too_long == [] and m["tag"]["llm"]["too_long"] == 0 and m["score"]["llm"]["too_long"] == 0
        assert m["tag"]["counts"]["invalid"] == 0 and m["data"]["counts"]["records"] == 32
        longest = max(sum(len(x["content"]) for x in body["messages"]) for body in stub.requests)
        assert longest <= CONTEXT_CHARS

        # Clipping off: the stub answers llama.cpp's 400; those calls are invalid, the stages still complete.
        unclipped = [*base, "tagger.max_input_chars=0", "scorer.judge.max_text_chars=0", "client.max_error_rate=0.0"]
        sent = stub.count
        out = run_cli([*unclipped, f"hydra.run.dir={tmp_path / 'unclipped'}"])
        assert out.returncode == 0, out.stderr[-3000:]
        m = manifests(tmp_path / "unclipped")
        assert {"tag", "score"} <= set(m)
        assert m["tag"]["llm"]["too_long"] == 1 and m["tag"]["llm"]["errors"] == 0
        assert m["tag"]["counts"]["invalid"] == 1
        (invalid,) = read_jsonl(tmp_path / "unclipped" / "tag" / "invalid.jsonl")
        assert invalid["index"] == 30 and invalid["error"].startswith("input too long: HTTP 400")
        assert m["score"]["llm"]["too_long"] >= 1 and m["score"]["llm"]["errors"] == 0
        assert len(stub.too_long) == m["tag"]["llm"]["too_long"] + m["score"]["llm"]["too_long"]
        too_long = [r for r in cache_rows(tmp_path / "outputs" / "cache") if (r["error"] or "").startswith("input too")]
        assert len(too_long) == len(stub.too_long) and all(r["status"] == "invalid" for r in too_long)
        assert stub.count > sent

        # A re-run (new run dir, nothing shared) makes no call at all, in particular none for the long rows.
        sent = stub.count
        again = run_cli([*unclipped, f"hydra.run.dir={tmp_path / 'again'}"])
        assert again.returncode == 0, again.stderr[-3000:]
        assert stub.count == sent
        m2 = manifests(tmp_path / "again")
        assert m2["tag"]["llm"]["calls"] == 0 and m2["tag"]["counts"]["invalid"] == 1
        assert m2["score"]["llm"]["calls"] == 0


@pytest.mark.parametrize("concurrency", [1, 4])
def test_401_stops_the_stage_after_the_first_call(tmp_path, concurrency):
    pool = write_pool(tmp_path / "pool.jsonl", sample_rows(12))
    with StubServer(responder=tacos_responder, faults=["401"] * 100) as stub:
        out = run_cli([*llm_overrides(stub.base_url, tmp_path, pool), "stages=[data,clean,tag]",
                       f"client.max_concurrency={concurrency}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert out.returncode == 2
    assert 1 <= stub.count <= concurrency  # the calls already in flight, nothing after the first refusal
    (line,) = error_lines(out.stderr)
    assert "LLMUnavailable" in line and "HTTP 401" in line and "refuses calls" in line
    assert (out.stdout + out.stderr).count("HTTP 401 from") <= 2  # the error line and its log record, not one per call
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "run" / "tag" / "manifest.json").exists()


def test_truncated_replies_are_cached_counted_and_named(tmp_path):
    rows = sample_rows(8)
    cut_ok, cut_broken = rows[2]["instruction"], rows[5]["instruction"]

    def responder(body):
        text = tacos_responder(body)
        prompt = body["messages"][-1]["content"]
        if cut_ok in prompt:
            return Scripted(text, finish_reason="length")
        if cut_broken in prompt:
            return Scripted(text[: len(text) // 2], finish_reason="length")
        return text

    pool = write_pool(tmp_path / "pool.jsonl", rows)
    with StubServer(responder=responder) as stub:
        out = run_cli([*llm_overrides(stub.base_url, tmp_path, pool), "stages=[data,clean,tag]", "client.parse_retries=2",
                       f"hydra.run.dir={tmp_path / 'run'}"])
    assert out.returncode == 0, out.stderr[-3000:]
    tag = manifests(tmp_path / "run")["tag"]
    assert tag["llm"]["truncated"] == 1 + 3  # the parsable one once, the broken one in each of its 3 generations
    assert tag["counts"]["invalid"] == 1 and tag["counts"]["tagged"] == 7
    (invalid,) = read_jsonl(tmp_path / "run" / "tag" / "invalid.jsonl")
    assert invalid["index"] == 5
    assert "finish_reason=length" in invalid["error"] and "cut at max_tokens" in invalid["error"]
    reasons = {r["request"]["label"]: (r["status"], r["finish_reason"])
               for r in cache_rows(tmp_path / "outputs" / "cache")}
    by_index = {r["index"]: r["id"] for r in read_jsonl(tmp_path / "run" / "data" / "records.jsonl")}
    assert reasons[by_index[2]] == ("ok", "length") and reasons[by_index[5]] == ("invalid", "length")
    assert all(reasons[by_index[i]] == ("ok", "stop") for i in (0, 1, 3, 4, 6, 7))
