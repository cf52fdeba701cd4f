"""Run names: `${tacos_run_name:LABEL}` (conf/config.yaml's run_name) resolves to LABEL-<hash of the selection
config>[-seed<k>], so that no two runs of a sweep share a W&B name, a model_id or an answers registry entry."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

# The config groups that decide which rows a run selects (and so what its model is trained on). Keys that only
# say where or how fast something runs on this machine are left out, and paths below the repository, the data dir,
# the output dir or the model cache are written relative to them: the same selection has the same name everywhere.
SELECTION_GROUPS = ("dataset", "tagger", "normalize", "clustering", "scorer", "selection", "guard", "lm", "llm",
                    "export", "report", "refine")
_MACHINE_KEYS = {"cache_dir", "n_threads", "threads", "startup_timeout_s", "server_binary", "server_args",
                 "max_concurrency", "device", "timeout", "path_env", "api_key_env", "prices", "name@export"}
_PATH_ROOTS = ("model_cache_dir", "data_dir", "output_dir", "root_dir")
RUN_HASH_CHARS = 6


def _plain(node: Any, root: Any, key_path: str = "") -> Any:
    """A resolved plain copy of a config node that survives missing values (`???`) and interpolations that cannot
    be resolved yet: they are kept as their text (the run name must never be why a command fails)."""
    if isinstance(node, DictConfig):
        out = {}
        for k in node.keys():
            if f"{k}@{key_path}" in _MACHINE_KEYS or k in _MACHINE_KEYS:
                continue
            out[str(k)] = _plain_item(node, k, root, k if not key_path else f"{key_path}.{k}")
        return out
    if isinstance(node, ListConfig):
        return [_plain_item(node, i, root, key_path) for i in range(len(node))]
    return node


def _plain_item(node: Any, key: Any, root: Any, key_path: str) -> Any:
    if OmegaConf.is_missing(node, key):
        return "???"
    try:
        value = node[key]
    except Exception:  # an interpolation that does not resolve here (reported by the config checks, not here)
        return str(node._get_node(key)._value())
    return _plain(value, root, key_path) if isinstance(value, (DictConfig, ListConfig)) else value


def _relative_paths(obj: Any, roots: list[tuple[str, str]]) -> Any:
    if isinstance(obj, dict):
        return {k: _relative_paths(v, roots) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_relative_paths(v, roots) for v in obj]
    if isinstance(obj, str):
        for name, prefix in roots:
            if prefix and (obj == prefix or obj.startswith(prefix.rstrip("/") + "/")):
                return "${paths." + name + "}" + obj[len(prefix.rstrip("/")):]
    return obj


def selection_config(root: Any) -> dict:
    """The part of a composed config a run's name is a hash of (SELECTION_GROUPS, machine-local keys left out;
    `refine` only when the run refines; the seed is in the name itself)."""
    stages = list(OmegaConf.select(root, "stages", default=[]) or [])
    out = {}
    for group in SELECTION_GROUPS:
        if group == "refine" and "refine" not in stages:
            continue
        node = OmegaConf.select(root, group, default=None, throw_on_missing=False)
        if node is not None:
            out[group] = _plain(node, root, group)
    if isinstance(out.get("export"), dict):
        out["export"].pop("name", None)  # export.name is the run name itself
    roots = []
    for name in _PATH_ROOTS:
        try:
            value = OmegaConf.select(root, f"paths.{name}", default=None)
        except Exception:
            value = None
        if value:
            roots.append((name, str(Path(str(value)).expanduser())))
    return _relative_paths(out, roots)


def selection_hash(root: Any) -> str:
    # tacos.config.config_hash's canonical JSON (not imported: tacos.config registers this module's resolver)
    blob = json.dumps(selection_config(root), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:RUN_HASH_CHARS]


def run_name_resolver(label: str, *, _root_: Any) -> str:
    """`${tacos_run_name:LABEL}`: LABEL-<hash of the selection config>[-seed<k>] (seed 0 adds nothing)."""
    seed = OmegaConf.select(_root_, "seed", default=0)
    suffix = f"-seed{seed}" if seed not in (0, None, "0") else ""
    return f"{label}-{selection_hash(_root_)}{suffix}"


_HASHED_NAME = re.compile(rf"^(?P<label>.+)-[0-9a-f]{{{RUN_HASH_CHARS}}}(?P<seed>-seed\d+)?$")


def run_label_of(name: str) -> str:
    """The readable part of a run name (`alpaca-random-1a2b3c-seed1` -> `alpaca-random-seed1`); a name without a
    hash is returned as it is."""
    m = _HASHED_NAME.match(str(name))
    return f"{m.group('label')}{m.group('seed') or ''}" if m else str(name)
