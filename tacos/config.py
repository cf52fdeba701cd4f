"""Config helpers: resolvers, canonical hashing, secret checks, flattening for W&B. No heavy imports here."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from tacos.paths import REPO_ROOT

# Config keys whose *value* would be a credential. `api_key_env` (the NAME of a variable) is fine.
SECRET_KEY = re.compile(r"(?i)^(api_?key|apikey|access_token|auth_token|token|secret|password|.*_secret|wandb_key)$")
# Strings that look like credentials wherever they appear.
SECRET_VALUE = re.compile(r"(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,})")


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("tacos_root"):
        OmegaConf.register_new_resolver("tacos_root", lambda: str(REPO_ROOT))


register_resolvers()


def to_container(cfg: Any) -> Any:
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def canonical_json(obj: Any) -> str:
    return json.dumps(to_container(obj), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def config_hash(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def find_secrets(obj: Any, prefix: str = "") -> list[str]:
    """Dotted paths of config entries that hold a credential (non-empty secret-named key or key-looking value)."""
    found: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if SECRET_KEY.match(str(k)) and v not in (None, "", "???"):
                found.append(path)
            else:
                found.extend(find_secrets(v, path))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found.extend(find_secrets(v, f"{prefix}[{i}]"))
    elif isinstance(obj, str) and SECRET_VALUE.search(obj):
        found.append(prefix)
    return found


def redact(obj: Any) -> Any:
    """A copy with credentials replaced by '<redacted>' (for logs and W&B)."""
    if isinstance(obj, dict):
        return {k: ("<redacted>" if SECRET_KEY.match(str(k)) and v not in (None, "") else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return SECRET_VALUE.sub("<redacted>", obj)
    return obj


def scrub_file(path: Path) -> None:
    """Rewrite a saved text file with key-looking strings and secret-named values redacted."""
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    text = SECRET_VALUE.sub("<redacted>", text)
    text = re.sub(r"(?im)^(\s*-?\s*(?:\S+\.)?(?:api_?key|apikey|access_token|auth_token|token|secret|password)\s*[:=]\s*).+$",
                  r"\1<redacted>", text)
    path.write_text(text, encoding="utf-8")


def flatten(obj: Any, prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Flat {dotted.key: scalar} for W&B filters (lists become JSON strings)."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{sep}{k}" if prefix else str(k), sep))
    elif isinstance(obj, list):
        out[prefix] = json.dumps(obj, default=str)
    else:
        out[prefix] = obj
    return out
