"""Config helpers: resolvers, canonical hashing, secret checks, flattening for W&B. No heavy imports here."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from tacos.paths import REPO_ROOT
from tacos.run_names import run_name_resolver

# Config keys whose *value* is a credential, compared lower-case with '-' read as '_' (HTTP header names): the name
# itself or any `<prefix>_<name>` (openai_api_key, x-api-key, hub_token, db_password, aws_secret_access_key).
# `api_key_env` (the NAME of an environment variable), counts such as `max_tokens` and a tokenizer's special tokens
# (`pad_token`) do not match.
SECRET_KEY = re.compile(r"^(?!(?:pad|eos|bos|unk|sep|cls|mask)_token$)(?:.*_)?(?:api_?key|access_?key|secret_?key|private_?key|token|secret|password|passwd"
                        r"|authorization|bearer|auth|cookie|credentials?)$|^wandb_key$")
# Credentials inside strings, wherever they appear; the group `s`, where there is one, is the credential itself.
SECRET_VALUES = (
    # key formats with a known prefix (OpenAI, Hugging Face, GitHub, Slack, AWS, Google)
    re.compile(r"sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}"
               r"|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}"),
    re.compile(r"://(?P<s>[^/\s:@?#]*:[^/\s@?#]+)@"),  # https://user:password@host
    re.compile(r"(?i)[?&](?:api[_-]?key|apikey|key|token|access[_-]?token|auth(?:[_-]?token)?|password|passwd|secret"
               r"|client[_-]?secret|sig|signature)=(?P<s>[^&\s#'\"]+)"),  # ...?api_key=...&token=...
    re.compile(r"(?i)\bbearer\s+(?P<s>[A-Za-z0-9._~+/=-]{6,})"),  # an HTTP Authorization value
)
REDACTED = "<redacted>"
_NOT_A_VALUE = (None, "", "???")


def is_secret_name(key: Any) -> bool:
    return bool(SECRET_KEY.match(str(key).lower().replace("-", "_")))


def _holds_value(v: Any) -> bool:
    """A secret-named entry that is unset (null, '', ???, an empty mapping) or a flag holds no credential."""
    if isinstance(v, (dict, list)):
        return bool(v)
    return v not in _NOT_A_VALUE and not isinstance(v, bool)


def _matches(text: str) -> list[str]:
    """The credentials inside a string."""
    return [m.group("s") if "s" in m.re.groupindex else m.group(0) for p in SECRET_VALUES for m in p.finditer(text)]


def redact_text(text: str) -> str:
    """The string with every credential inside it replaced by <redacted> (the rest of a URL or header is kept)."""
    def sub(m: re.Match) -> str:
        if "s" not in m.re.groupindex:
            return REDACTED
        return m.group(0)[: m.start("s") - m.start()] + REDACTED + m.group(0)[m.end("s") - m.start():]

    for pattern in SECRET_VALUES:
        text = pattern.sub(sub, text)
    return text


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("tacos_root"):
        OmegaConf.register_new_resolver("tacos_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("tacos_run_name"):
        OmegaConf.register_new_resolver("tacos_run_name", run_name_resolver)


def to_container(cfg: Any) -> Any:
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def canonical_json(obj: Any) -> str:
    return json.dumps(to_container(obj), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def config_hash(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def find_secrets(obj: Any, prefix: str = "") -> list[str]:
    """Dotted paths of config entries that hold a credential (a secret-named key with a value, or a string holding
    a credential: a key-looking value, a URL's user:password or credential query parameter, a bearer token)."""
    found: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if is_secret_name(k) and _holds_value(v):
                found.append(path)
            else:
                found.extend(find_secrets(v, path))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found.extend(find_secrets(v, f"{prefix}[{i}]"))
    elif isinstance(obj, str) and _matches(obj):
        found.append(prefix)
    return found


def secret_strings(obj: Any) -> list[str]:
    """The credentials themselves (for scrubbing files where they were written verbatim)."""
    if isinstance(obj, dict):
        out: list[str] = []
        for k, v in obj.items():
            if is_secret_name(k) and _holds_value(v):
                out.extend(_leaves(v))
            else:
                out.extend(secret_strings(v))
        return out
    if isinstance(obj, list):
        return [s for v in obj for s in secret_strings(v)]
    return _matches(obj) if isinstance(obj, str) else []


def _leaves(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _leaves(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _leaves(v)]
    return [] if obj in _NOT_A_VALUE else [str(obj)]


def redact(obj: Any) -> Any:
    """A copy with credentials replaced by '<redacted>' (for logs and W&B)."""
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret_name(k) and _holds_value(v) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


# Override values that hold no credential (null, empty, a flag), so a secret-named key may carry them.
_UNSET = {"", "null", "none", "''", '""', "???", "true", "false"}
# `name: ...` inside a dict or list literal of an override value: {authorization: 'Bearer ...'}
_LITERAL_KEY = re.compile(r"[{,]\s*['\"]?([\w-]+)['\"]?\s*:\s*[^\s,}]")


def _split_override(override: str) -> tuple[str, str, str]:
    """(key as written, its last component, the value text) of a Hydra override such as `+llm.api_key=a,b`."""
    key, _, value = override.partition("=")
    return key, key.lstrip("+~").rsplit(".", 1)[-1], value.strip()


def override_secrets(overrides: list[str]) -> list[str]:
    """The keys (as written) of command-line overrides that carry a credential: a secret-named key set to a value
    (any sweep value too), a credential inside the value, or a secret-named key inside a dict/list value."""
    found = []
    for override in overrides:
        key, name, value = _split_override(str(override))
        if ((is_secret_name(name) and value.lower() not in _UNSET) or _matches(value)
                or any(is_secret_name(k) for k in _LITERAL_KEY.findall(value))):
            found.append(key)
    return found


def override_secret_strings(overrides: list[str]) -> list[str]:
    """The credentials among override values: a secret-named key's whole value and each of its sweep choices, and
    the credentials inside any value (a secret-named key inside a dict value: see secret_strings of the config)."""
    out = []
    for override in overrides:
        _, name, value = _split_override(str(override))
        if is_secret_name(name) and value.lower() not in _UNSET:
            out += [value, *(v.strip(" '\"") for v in value.split(","))]
        out += _matches(value)
    return out


def config_secrets(container: Any, overrides: list[str]) -> list[str]:
    """Entries of a resolved config and keys of its command-line overrides that hold a credential, sorted."""
    entries = find_secrets(container)
    return sorted({*entries, *(k for k in override_secrets(overrides) if k.lstrip("+~") not in entries)})


def redact_overrides(overrides: list[str]) -> list[str]:
    """Command-line arguments fit to record: a credential-carrying override reads `key=<redacted>`."""
    return [f"{_split_override(o)[0]}={REDACTED}" if override_secrets([o]) else redact_text(o) for o in overrides]


# `name: value` (YAML) and `name=value` (a saved override) lines; their value is redacted when name is secret-named.
_ASSIGNMENT = re.compile(r"(?m)^([ \t]*-?[ \t]*'?[+~]*(?:[\w@-]+\.)*([\w-]+)[ \t]*[:=][ \t]*)(\S.*)$")
# `name=value` pairs inside a line, such as hydra.yaml's `override_dirname: +llm.api_key=...,logger=none`.
_OVERRIDE_PAIR = re.compile(r"(?<=[\s,:\[])([+~]*(?:[\w@-]+\.)*([\w-]+)=['\"]?)([^,\s'\"\]]+)")


def scrub_file(path: Path, secrets: list[str] = ()) -> None:
    """Rewrite a saved text file without credentials: the given ones wherever they appear (those of 4 characters or
    more: replacing a shorter one everywhere would garble the file), then every credential-looking string and the
    value of every secret-named `name: value` line or `name=value` pair."""
    if not path.is_file():
        return
    text = original = path.read_text(encoding="utf-8")
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = redact_text(text)
    for pattern in (_ASSIGNMENT, _OVERRIDE_PAIR):
        text = pattern.sub(lambda m: m.group(1) + REDACTED
                           if is_secret_name(m.group(2)) and m.group(3).strip().lower() not in _UNSET else m.group(0),
                           text)
    if text != original:
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


# -- value checks for the validate() of config specs: each error names the key -----------------------------------
def check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {value!r}")


def check_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, not {value!r}")


def check_number(key: str, value: Any, low: float, high: float = float("inf"), low_open: bool = False) -> None:
    """low <= value <= high (low < value with low_open); an int counts as a number, a bool does not."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        (low < value if low_open else low <= value) and value <= high
    if not ok:
        bounds = f"{'>' if low_open else '>='} {low}" if high == float("inf") else \
            f"in {'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{key} must be a number {bounds}, not {value!r}")


def check_choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(map(str, choices))}; not {value!r}")


register_resolvers()  # last: the resolvers above are defined by now
