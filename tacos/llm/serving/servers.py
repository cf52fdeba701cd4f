"""Servers tacos starts itself on a free loopback port and stops with the run (tacos.llm.serving.process keeps them from
outliving us): the embedded default `LocalLlamaServer` (`llm=local`: llama.cpp's own C++ server through the
prebuilt xllamacpp wheel, in a child process), `LocalLlamaCpp` (`llm=local_llama_cpp_python`: llama-cpp-python's
Python server, slower: logits of every prompt token, Python-side logprobs and grammar sampling, no `json_schema`)
and, in tacos.llm.serving.vllm_server, `VLLMServer` (`llm=vllm`, GPU).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tacos.llm.serving import local_models
from tacos.llm.serving.process import PortTaken, ServerProcess, free_port
from tacos.llm.calling.types import Endpoint
from tacos.llm.calling.providers import EndpointProvider, settings_identity

log = logging.getLogger(__name__)

_LLAMA_CPP_INSTALL = (
    'pip install "llama-cpp-python[server]==0.3.36"  (PyPI has only the source: the build takes about 6 min on '
    '2 cores; set CMAKE_BUILD_PARALLEL_LEVEL to your core count)')
_LLAMA_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
XLLAMACPP_VERSION = "2026.10.11549"  # the pin in pyproject.toml: llama.cpp's server, prebuilt (AVX2) CPU wheel
_XLLAMACPP_INSTALL = f'pip install "xllamacpp=={XLLAMACPP_VERSION}"  (a prebuilt 34 MB wheel, no compile)'
PORT_ATTEMPTS = 4  # the first try and up to 3 retries on a new port when another process took ours


def _log_path(log_dir: Path | str | None, stem: str, port: int) -> Path:
    base = Path(log_dir) if log_dir else Path(tempfile.gettempdir()) / "tacos"
    return base / f"{stem}-{port}.log"


class _ManagedServer(EndpointProvider):
    """Shared lifecycle of servers we spawn on a free loopback port.

    Every start serves the model under `<alias>-<random nonce>` and is ready only when GET /v1/models lists exactly
    that id, so a server someone else runs on the same port is never mistaken for ours. free_port() releases the
    port before the child binds it; when another process wins it (our child exits with the port taken, or a foreign
    server answers) the start is retried on a new port, PORT_ATTEMPTS tries in all.
    """

    supports_logprobs = True  # llama.cpp and vLLM return token log-probabilities

    _endpoint: Endpoint | None = None
    _server: ServerProcess | None = None
    last_start_s: float | None = None  # wall time of the last start(), assembly included

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server else None

    def _launch(self, command: Callable[[int, str], list[str]], alias: str, log_dir: Path | None, name: str,
                timeout_s: float, env: dict[str, str] | None = None, nonce: bool = True) -> tuple[int, str]:
        """Spawn `command(port, served_alias)` until one answers as ours; returns (port, served_alias)."""
        last: PortTaken | None = None
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = free_port()
            served = f"{alias}-{secrets.token_hex(6)}" if nonce else alias
            server = ServerProcess(command(port, served), _log_path(log_dir, name, port), name=name, env=env).spawn()
            try:
                waited = server.wait_ready(f"http://127.0.0.1:{port}/v1/models", timeout_s, expect_model=served,
                                           port=port)
            except PortTaken as e:
                last = e
                log.warning("%s: lost port %d to another process (try %d of %d): %s", name, port, attempt,
                            PORT_ATTEMPTS, str(e).splitlines()[0])
                continue
            self._server = server
            log.info("%s ready on port %d after %.1f s (log: %s)", name, port, waited, server.log_path)
            return port, served
        raise RuntimeError(f"{name} could not get a loopback port of its own in {PORT_ATTEMPTS} tries; the last "
                           f"failure: {last}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None
        self._endpoint = None


class _LocalGGUFServer(_ManagedServer):
    """The settings both llama.cpp servers share: a bundled GGUF name (or a .gguf path) and how to run it on CPU."""

    def __init__(self, model: str = "qwen2.5-coder-0.5b", n_ctx: int = 4096, n_threads: int | None = None,
                 startup_timeout_s: float = 120.0, cache_dir: str | None = None, max_concurrency: int = 1):
        self.model = str(model)
        self.n_ctx = int(n_ctx)
        # null: TACOS_LLM_THREADS, else every core. On cores shared with other CPU work, llama.cpp's threads wait on
        # each other at every op: 2 threads beside one busy core took 89 s for what 1 thread did in 17 s (the tests
        # under pytest-xdist set 1 per worker, tests/conftest.py).
        self.n_threads = int(n_threads or os.environ.get("TACOS_LLM_THREADS") or os.cpu_count() or 1)
        self.startup_timeout_s = float(startup_timeout_s)
        self.cache_dir = cache_dir
        self.max_concurrency = int(max_concurrency)
        if self.max_concurrency < 1 or self.n_ctx < 1:
            raise ValueError(f"llm.max_concurrency and llm.n_ctx must be >= 1, got {self.max_concurrency} and "
                             f"{self.n_ctx}")


class LocalLlamaCpp(_LocalGGUFServer):
    """`python -m llama_cpp.server` on a bundled Qwen GGUF (or any .gguf path), CPU, loopback only."""

    def __init__(self, model: str = "qwen2.5-coder-0.5b", n_ctx: int = 4096, n_threads: int | None = None,
                 startup_timeout_s: float = 120.0, cache_dir: str | None = None, max_concurrency: int = 1,
                 extra_args: Sequence[Any] = ()):
        super().__init__(model, n_ctx, n_threads, startup_timeout_s, cache_dir, max_concurrency)
        self.extra_args = [str(a) for a in extra_args]

    @property
    def identity(self) -> str:
        sha = local_models.model_sha256(self.model, self.cache_dir)
        return settings_identity(f"llama_cpp:{local_models.model_display_name(self.model)}:{sha}",
                                 {"n_ctx": self.n_ctx, "extra_args": self.extra_args},
                                 {"n_ctx": 4096, "extra_args": []})

    def start(self, log_dir: Path | None = None) -> Endpoint:
        if self._endpoint is not None:
            return self._endpoint
        missing = [m for m in _LLAMA_SERVER_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise RuntimeError(
                f"llm=local needs llama-cpp-python with its server extra (missing modules: {', '.join(missing)}). "
                f"Install it with:\n  {_LLAMA_CPP_INSTALL}")
        t0 = time.monotonic()
        gguf = local_models.gguf_path(self.model, self.cache_dir)

        def command(port: int, served: str) -> list[str]:
            return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", served,
                    "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(self.n_threads),
                    "--n_threads_batch", str(self.n_threads), "--n_ctx", str(self.n_ctx), *self.extra_args]

        port, served = self._launch(command, local_models.model_display_name(self.model), log_dir,
                                    "llama_cpp_server", self.startup_timeout_s)
        self.last_start_s = time.monotonic() - t0
        self._endpoint = Endpoint(
            base_url=f"http://127.0.0.1:{port}/v1", model=served, identity=self.identity, api_key_env=None,
            structured_output="llama_cpp", supports_logprobs=True, max_concurrency=self.max_concurrency, grammar=True)
        return self._endpoint


class LocalLlamaServer(_LocalGGUFServer):
    """llama.cpp's own C++ server (the xllamacpp wheel) on a bundled Qwen GGUF (or any .gguf path), CPU, loopback.

    It runs in a child process (`python -m tacos.llm.serving.llama_server_child`), so it gets every guarantee of
    tacos.llm.serving.process: stopped on exit, error, Ctrl-C and SIGTERM, SIGKILLed by the kernel if we are kill -9ed.
    `max_concurrency` is also its number of parallel slots (continuous batching); each slot has `n_ctx` tokens.
    `params` sets further xllamacpp.CommonParams fields (dotted for nested ones, e.g. `sampling.top_k`).

    `server_binary`: a `llama-server` executable instead of the wheel (e.g. one compiled here with -march=native,
    which beats the wheel's AVX2 build where the CPU has AVX-512), under the same lifecycle; `server_args` are extra
    command-line options for it. Its `--version` line and a hash of it and the libraries beside it take the wheel's
    place in the identity.

    identity = llama_server:<name>:<model sha256>:<hash of the engine version, n_ctx and params>: everything that
    can change an answer, and nothing that cannot (port, threads, slots).
    """

    def __init__(self, model: str = "qwen2.5-coder-0.5b", n_ctx: int = 4096, n_threads: int | None = None,
                 startup_timeout_s: float = 120.0, cache_dir: str | None = None, max_concurrency: int = 1,
                 params: Mapping[str, Any] | None = None, server_binary: str | None = None,
                 server_args: Sequence[str] | None = None):
        super().__init__(model, n_ctx, n_threads, startup_timeout_s, cache_dir, max_concurrency)
        from omegaconf import DictConfig, OmegaConf

        if isinstance(params, DictConfig):  # from Hydra: plain values, so that they hash and travel as JSON
            params = OmegaConf.to_container(params, resolve=True)
        self.params = {str(k): v for k, v in dict(params or {}).items()}
        from tacos.llm.serving.llama_server_child import RESERVED

        reserved = sorted(set(self.params) & RESERVED)
        if reserved:
            raise ValueError(f"llm.params {reserved} are set by tacos (loopback host, port, alias, threads); use "
                             f"llm.n_ctx, llm.n_threads and llm.max_concurrency instead")
        try:
            json.dumps(self.params)
        except TypeError as e:
            raise ValueError(f"llm.params must be plain values (numbers, strings, booleans, lists): {e}") from e
        self.server_binary = str(Path(server_binary).expanduser().resolve()) if server_binary else None
        self.server_args = [str(a) for a in (server_args or [])]
        if self.server_binary is None and self.server_args:
            raise ValueError("llm.server_args are options of a llama-server executable: set llm.server_binary too")
        if self.server_binary is not None:
            if self.params:
                raise ValueError("llm.params are xllamacpp fields; with llm.server_binary pass llama-server options "
                                 "as llm.server_args instead")
            if not os.access(self.server_binary, os.X_OK):
                raise ValueError(f"llm.server_binary={self.server_binary} is not an executable file")
        self._engine: str | None = None

    @staticmethod
    def engine_version() -> str:
        try:
            return importlib.metadata.version("xllamacpp")
        except importlib.metadata.PackageNotFoundError:
            return "not-installed"

    def engine(self) -> str:
        """What computes the answers: the wheel's version, or the binary's version line and content hash."""
        if self._engine is None:
            if self.server_binary is None:
                self._engine = f"xllamacpp=={self.engine_version()}"
            else:
                out = subprocess.run([self.server_binary, "--version"], check=False, capture_output=True, text=True,
                                     timeout=30, env={**os.environ, **self._binary_env()})
                version = next((ln.strip() for ln in (out.stdout + out.stderr).splitlines()
                                if ln.startswith("version")), "version unknown")
                # The SIMD code lives in the libraries beside the binary (an AVX2 and a native build differ there).
                binary = Path(self.server_binary)
                parts = [binary, *sorted(p for pattern in ("libggml*", "libllama*") for p in binary.parent.glob(pattern)
                                         if p.is_file() and not p.is_symlink())]
                h = hashlib.sha256()
                for part in parts:
                    h.update(part.name.encode() + b"\0" + part.read_bytes())
                digest = h.hexdigest()[:16]
                self._engine = f"llama-server {version} sha256:{digest}"
        return self._engine

    def _binary_env(self) -> dict[str, str]:
        # a llama.cpp build tree keeps the server's shared libraries beside it
        folder = str(Path(self.server_binary).parent)
        return {"LD_LIBRARY_PATH": os.pathsep.join(p for p in (folder, os.environ.get("LD_LIBRARY_PATH")) if p)}

    @property
    def identity(self) -> str:
        sha = local_models.model_sha256(self.model, self.cache_dir)
        settings = {"engine": self.engine(), "n_ctx": self.n_ctx, "params": self.params}
        if self.server_args:
            settings["server_args"] = self.server_args
        settings = json.dumps(settings, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(settings.encode()).hexdigest()[:16]
        return f"llama_server:{local_models.model_display_name(self.model)}:{sha}:{digest}"

    def start(self, log_dir: Path | None = None) -> Endpoint:
        if self._endpoint is not None:
            return self._endpoint
        if self.server_binary is None and importlib.util.find_spec("xllamacpp") is None:
            raise RuntimeError(f"llm=local needs xllamacpp (llama.cpp's server as a wheel), which is not installed. "
                               f"Install it with:\n  {_XLLAMACPP_INSTALL}\nor use llm=local_llama_cpp_python")
        t0 = time.monotonic()
        gguf = local_models.gguf_path(self.model, self.cache_dir)
        slots = self.max_concurrency
        # -m, not the file's path: as a script its folder would go first on sys.path (a module there named like one of
        # the standard library's would shadow it). The folder holding the tacos package: tacos/llm/serving/ -> 3 up.
        package_root = str(Path(__file__).resolve().parents[3])
        env = {"PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}

        def command(port: int, served: str) -> list[str]:
            if self.server_binary is not None:
                return [self.server_binary, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "--alias",
                        served, "-c", str(self.n_ctx * slots), "-t", str(self.n_threads), "-tb",
                        str(self.n_threads), "-np", str(slots), *self.server_args]
            return [sys.executable, "-m", "tacos.llm.serving.llama_server_child", "--model", str(gguf), "--port", str(port),
                    "--alias", served, "--n-ctx", str(self.n_ctx * slots), "--threads", str(self.n_threads),
                    "--parallel", str(slots), "--params", json.dumps(self.params, sort_keys=True)]

        if self.server_binary is not None:
            env = self._binary_env()
        port, served = self._launch(command, local_models.model_display_name(self.model), log_dir, "llama_server",
                                    self.startup_timeout_s, env=env)
        self.last_start_s = time.monotonic() - t0
        self._endpoint = Endpoint(
            base_url=f"http://127.0.0.1:{port}/v1", model=served, identity=self.identity, api_key_env=None,
            structured_output="json_schema", supports_logprobs=True, max_concurrency=self.max_concurrency,
            grammar=True)
        return self._endpoint
