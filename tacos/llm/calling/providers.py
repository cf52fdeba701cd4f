"""Endpoint providers: what `conf/llm/*.yaml` instantiates. Each one yields an `Endpoint` from `start()`
(`EndpointPool`: a list of them, replicas of one model, which `LLMClient` spreads its calls over). Servers that
tacos starts itself (the embedded llama.cpp server, vLLM) are in tacos.llm.serving.servers.

`identity` never starts anything (cache keys and dry runs need it up front) and never contains a URL or port, so
moving a server does not invalidate the call cache while changing the model, or a setting that changes answers,
always does.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from tacos.llm.serving.readiness import NotServing, describe, wait_until_serving
from tacos.llm.calling.types import Endpoint, StructuredOutput

log = logging.getLogger(__name__)


def settings_identity(base: str, settings: dict, defaults: dict) -> str:
    """`base` when every answer-changing setting has its default, else `base:<digest of the settings>`: a change of
    structured output, extra request fields, context size or server flags re-asks the calls instead of reusing
    answers obtained under other settings. Ports, URLs, threads and timeouts never enter (they change no answer)."""
    if all(settings.get(k) == v for k, v in defaults.items()) and set(settings) <= set(defaults):
        return base
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return f"{base}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


class EndpointProvider:
    """Base: `with provider as endpoint:` or `with provider.serving(log_dir) as endpoint:`."""

    @property
    def identity(self) -> str:
        raise NotImplementedError

    def prices(self) -> tuple[float, float]:
        """(input, output) USD per 1M tokens, known without starting anything (dry-run cost estimates)."""
        return 0.0, 0.0

    def start(self, log_dir: Path | None = None) -> Endpoint:
        raise NotImplementedError

    def stop(self) -> None:
        """Nothing to stop for remote endpoints; servers we started override this."""

    @contextlib.contextmanager
    def serving(self, log_dir: Path | None = None) -> Iterator[Endpoint]:
        try:
            yield self.start(log_dir)
        finally:
            self.stop()

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _plain_prices(prices: Mapping[str, Mapping[str, float]] | None) -> dict[str, tuple[float, float]]:
    return {str(m): (float(p["input"]), float(p["output"])) for m, p in (prices or {}).items()}


class _RemoteProvider(EndpointProvider):
    """Shared by the providers of servers someone else runs: the cache identity and the Endpoint they hand out."""

    kind = ""  # the identity's prefix
    model: str
    api_key_env: str | None
    structured_output: StructuredOutput
    supports_logprobs: bool
    extra_body: dict

    @property
    def identity(self) -> str:
        return settings_identity(f"{self.kind}:{self.model}", {"structured_output": self.structured_output,
                                                               "extra_body": self.extra_body},
                                 {"structured_output": "json_schema", "extra_body": {}})

    def _endpoint(self, base_url: str, max_concurrency: int) -> Endpoint:
        price_in, price_out = self.prices()
        return Endpoint(base_url=base_url, model=self.model, identity=self.identity, api_key_env=self.api_key_env,
                        structured_output=self.structured_output, supports_logprobs=self.supports_logprobs,
                        price_in_per_mtok=price_in, price_out_per_mtok=price_out, max_concurrency=max_concurrency,
                        extra_body=self.extra_body)


class OpenAIEndpoint(_RemoteProvider):
    """api.openai.com (or an Azure/OpenAI-shaped URL); the key is read from `api_key_env` at start()."""

    kind = "openai"

    def __init__(self, model: str = "gpt-4o-mini", base_url: str = "https://api.openai.com/v1",
                 api_key_env: str = "OPENAI_API_KEY", prices: Mapping[str, Mapping[str, float]] | None = None,
                 max_concurrency: int = 8, structured_output: StructuredOutput = "json_schema",
                 supports_logprobs: bool = True, extra_body: Mapping[str, Any] | None = None):
        self.model = str(model)
        self.base_url = str(base_url).rstrip("/")
        self.api_key_env = str(api_key_env)
        self.price_table = _plain_prices(prices)
        self.max_concurrency = int(max_concurrency)
        self.structured_output = structured_output
        self.supports_logprobs = bool(supports_logprobs)
        self.extra_body = dict(extra_body or {})

    def prices(self) -> tuple[float, float]:
        if self.model not in self.price_table:
            raise ValueError(
                f"no price for OpenAI model {self.model!r} in llm.prices (known: {sorted(self.price_table)}); add "
                f"llm.prices.{self.model}.input=<USD per 1M input tokens> and ...output=<USD per 1M output tokens>")
        return self.price_table[self.model]

    def start(self, log_dir: Path | None = None) -> Endpoint:
        endpoint = self._endpoint(self.base_url, self.max_concurrency)
        endpoint.api_key()  # missing key: a clear error now, before any call is made
        return endpoint


@dataclass(kw_only=True, eq=False)
class _SelfHostedProvider(_RemoteProvider):
    """The settings `llm=openai_compatible` and `llm=pool` share, and their start-up check: GET <base_url>/models
    must answer. `check_timeout_s` bounds the TCP connection (nothing there: fail at once); a server that is
    connected but busy is waited for up to `ready_timeout_s` (see tacos.llm.serving.readiness)."""

    model: str
    api_key_env: str | None = None
    structured_output: StructuredOutput = "json_object"
    supports_logprobs: bool = False
    max_concurrency: int = 4
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    check_timeout_s: float = 5.0
    ready_timeout_s: float = 600.0
    extra_body: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        # Hydra hands over DictConfigs and YAML may hold ints for floats: store plain values.
        self.model = str(self.model)
        self.api_key_env = str(self.api_key_env) if self.api_key_env else None
        self.supports_logprobs = bool(self.supports_logprobs)
        self.max_concurrency = int(self.max_concurrency)
        self.price_in_per_mtok = float(self.price_in_per_mtok)
        self.price_out_per_mtok = float(self.price_out_per_mtok)
        self.check_timeout_s = float(self.check_timeout_s)
        self.ready_timeout_s = float(self.ready_timeout_s)
        self.extra_body = dict(self.extra_body or {})
        if self.check_timeout_s <= 0 or self.ready_timeout_s <= 0:
            raise ValueError(f"llm.check_timeout_s ({self.check_timeout_s}) and llm.ready_timeout_s "
                             f"({self.ready_timeout_s}) must be > 0 seconds")

    def prices(self) -> tuple[float, float]:
        return self.price_in_per_mtok, self.price_out_per_mtok

    def _not_serving(self, endpoints: Sequence[Endpoint]) -> list[NotServing]:
        """The endpoints whose server is not usable (waits while they are busy)."""
        headers = {"Authorization": f"Bearer {endpoints[0].api_key()}"}
        return wait_until_serving([f"{ep.base_url}/models" for ep in endpoints], headers, self.check_timeout_s,
                                  self.ready_timeout_s)


@dataclass(kw_only=True, eq=False)
class OpenAICompatible(_SelfHostedProvider):
    """Any server that speaks the OpenAI chat API (a vLLM or llama.cpp you run yourself, a gateway, ...)."""

    kind = "openai_compatible"
    base_url: str

    def __post_init__(self) -> None:
        super().__post_init__()
        self.base_url = str(self.base_url).rstrip("/")

    def start(self, log_dir: Path | None = None) -> Endpoint:
        endpoint = self._endpoint(self.base_url, self.max_concurrency)
        failed = self._not_serving([endpoint])
        if failed:
            raise RuntimeError(f"the OpenAI-compatible server of llm=openai_compatible is not usable: "
                               f"{describe(failed)}")
        return endpoint


@dataclass(kw_only=True, eq=False)
class EndpointPool(_SelfHostedProvider):
    """Several OpenAI-compatible servers of ONE model (e.g. vLLM replicas); the client sends each call to the
    least-loaded one. Same identity as `OpenAICompatible` for the same model, so the two share cached calls.

    `endpoints` is a list of `{base_url, max_concurrency?}` (or bare URL strings); `max_concurrency` is the
    default per endpoint. Every endpoint must answer GET /models at start().
    """

    kind = "openai_compatible"  # no URL: whichever replica answers, it is one model
    endpoints: Sequence[Any] = ()
    structured_output: StructuredOutput = "json_schema"
    max_concurrency: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        self.members = self._members(self.endpoints, self.max_concurrency)

    @staticmethod
    def _members(endpoints: Sequence[Any], default_concurrency: int) -> list[tuple[str, int]]:
        usage = ("set llm.endpoints, e.g. 'llm.endpoints=[{base_url: http://gpu1:8000/v1, max_concurrency: 32}, "
                 "{base_url: http://gpu2:8000/v1}]'")
        if isinstance(endpoints, (str, Mapping)) or not endpoints:
            raise ValueError(f"llm=pool needs a non-empty list of endpoints: {usage}")
        members: list[tuple[str, int]] = []
        for i, entry in enumerate(endpoints):
            if isinstance(entry, str):
                entry = {"base_url": entry}
            if not isinstance(entry, Mapping) or not entry.get("base_url"):
                raise ValueError(f"llm.endpoints[{i}] must be {{base_url: ..., max_concurrency: ...}} or a URL, "
                                 f"got {entry!r}; {usage}")
            unknown = sorted(set(entry) - {"base_url", "max_concurrency"})
            if unknown:
                raise ValueError(f"llm.endpoints[{i}] has unknown key(s) {unknown}: only base_url and "
                                 f"max_concurrency are per endpoint (model, prices, ... are shared by the pool)")
            limit = entry.get("max_concurrency")
            limit = int(default_concurrency if limit is None else limit)
            if limit < 1:
                raise ValueError(f"llm.endpoints[{i}].max_concurrency must be >= 1, got {limit}")
            members.append((str(entry["base_url"]).rstrip("/"), limit))
        urls = [url for url, _ in members]
        duplicates = sorted({url for url in urls if urls.count(url) > 1})
        if duplicates:
            raise ValueError(f"llm.endpoints lists {duplicates} more than once; raise its max_concurrency instead")
        return members

    def start(self, log_dir: Path | None = None) -> list[Endpoint]:
        endpoints = [self._endpoint(url, limit) for url, limit in self.members]
        failed = self._not_serving(endpoints)
        if failed:
            raise RuntimeError(f"{len(failed)} of the {len(endpoints)} endpoints of llm=pool are not usable (fix or "
                               f"drop them in llm.endpoints): {describe(failed)}")
        return endpoints
