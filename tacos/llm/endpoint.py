"""What the client needs to know about a running OpenAI-compatible backend."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# How the backend accepts constrained JSON:
#   llama_cpp    -> response_format={"type": "json_object", "schema": {...}}   (llama-cpp-python extension)
#   json_schema  -> response_format={"type": "json_schema", "json_schema": {...}} (OpenAI, vLLM)
#   json_object  -> response_format={"type": "json_object"} (schema only in the prompt)
#   none         -> nothing; the parser alone validates
StructuredOutput = Literal["llama_cpp", "json_schema", "json_object", "none"]


@dataclass(frozen=True)
class Endpoint:
    """A reachable OpenAI-compatible chat endpoint.

    `model` is what is sent in the request; `identity` is what goes into cache keys (for a local
    GGUF: name + sha256), so a changing port or alias never invalidates the cache while a
    different model always does. The API key is never stored here: only the *name* of the
    environment variable that holds it.
    """

    base_url: str
    model: str
    identity: str
    api_key_env: str | None = None
    structured_output: StructuredOutput = "none"
    supports_logprobs: bool = False
    # USD per 1M tokens; 0 for local models.
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    max_concurrency: int = 1
    extra_body: dict = field(default_factory=dict)

    def api_key(self) -> str:
        import os

        if not self.api_key_env:
            return "EMPTY"
        key = os.environ.get(self.api_key_env)
        if not key:
            raise RuntimeError(
                f"environment variable {self.api_key_env} is not set: the endpoint {self.base_url} needs an API key "
                f"(keys are read from the environment only, never from config files)")
        return key
