"""The `client:` settings of the config, checked before any work: a wrong type or value names the setting.

    settings = ClientSettings.from_config(cfg.client)     # raises ValueError("client.max_retries must be ...")
    LLMClient(endpoint, cache, ledger, **settings.client_kwargs())
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True)
class ClientSettings:
    max_concurrency: int | None = None  # None: the endpoint's own limit
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    timeout: float = 300.0
    parse_retries: int = 2
    retry_invalid: bool = False
    progress: bool = True
    max_error_rate: float = 0.0  # read by LLMSession, not by the client

    def __post_init__(self) -> None:
        _integer(self, "max_concurrency", minimum=1, optional=True)
        _integer(self, "max_retries", minimum=0)
        _integer(self, "parse_retries", minimum=0)
        _number(self, "backoff_base", minimum=0.0)
        _number(self, "backoff_max", minimum=0.0)
        _number(self, "timeout", minimum=0.0, strict=True)
        _number(self, "max_error_rate", minimum=0.0, maximum=1.0)
        for name in ("retry_invalid", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"client.{name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | "ClientSettings" | None) -> "ClientSettings":
        """From the config's `client:` mapping (a dict or a DictConfig); unknown keys are refused by name."""
        if isinstance(cfg, ClientSettings):
            return cfg
        values = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join('client.' + k for k in unknown)}; the client settings "
                             f"are {', '.join(sorted(known))}")
        return cls(**values)

    def client_kwargs(self) -> dict:
        """The keyword arguments of LLMClient."""
        return {k: v for k, v in asdict(self).items() if k != "max_error_rate"}


def _integer(s: ClientSettings, name: str, minimum: int, optional: bool = False) -> None:
    value = getattr(s, name)
    if value is None and optional:
        return
    if isinstance(value, float) and value.is_integer():  # 5.0 from a YAML float means 5
        value = int(value)
        object.__setattr__(s, name, value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = f"an integer >= {minimum}" + (" or null" if optional else "")
        raise ValueError(f"client.{name} must be {kind}, got {value!r}")


def _number(s: ClientSettings, name: str, minimum: float, maximum: float | None = None, strict: bool = False) -> None:
    value = getattr(s, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
        (value > minimum if strict else value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        bound = f"{'>' if strict else '>='} {minimum:g}" + (f" and <= {maximum:g}" if maximum is not None else "")
        raise ValueError(f"client.{name} must be a number {bound}, got {value!r}")
    object.__setattr__(s, name, float(value))


__all__ = ["ClientSettings"]
