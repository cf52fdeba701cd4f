"""What a stage's output is a function of: its config slice, its code version and its inputs (tacos.pipeline skips a
stage whose manifest matches, and shares outputs across runs by this identity)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from omegaconf import DictConfig

from tacos import __version__
from tacos.code_identity import code_identity, object_modules
from tacos.stage import Stage, component

# How LLM calls travel (with the cache and ledger in their closure): no stage imports them, yet they shape answers.
LLM_TRANSPORT = ("tacos.llm.calling.session", "tacos.llm.calling.client", "tacos.llm.calling.wire")


def code_version(stage: Stage, cfg: DictConfig) -> str:
    """A hash of the source that computes the stage's output: the import closure in tacos/ of its module, of the
    modules of every object its components hold (at any depth, a user's own modules included: tacos.code_identity),
    and, for a stage that calls the LLM, of the LLM transport and the `llm` provider's classes; with the tacos version.
    Any change there, however indirect, makes earlier outputs stale (LLM answers stay cached: only work is redone)."""
    modules = {type(stage).__module__}
    for group in stage.components:
        modules |= object_modules(component(cfg, group))
    if stage.uses_llm(cfg):
        modules |= set(LLM_TRANSPORT) | (object_modules(component(cfg, "llm")) if cfg.get("llm") else set())
    return code_identity(modules, salt=__version__)[:16]


@dataclass(frozen=True)
class Identity:
    """What a stage's output is a function of."""

    config: dict  # the config slice (+ the LLM identity for LLM stages)
    config_hash: str
    code_version: str
    inputs: dict[str, str]  # required stage -> its output hash

    def matches(self, manifest: dict | None) -> bool:
        return bool(manifest) and manifest.get("status") == "complete" and \
            manifest.get("config_hash") == self.config_hash and manifest.get("inputs") == self.inputs and \
            manifest.get("code_version") == self.code_version

    def store_key(self, stage: str) -> str:
        blob = json.dumps({"stage": stage, "config_hash": self.config_hash, "inputs": self.inputs,
                           "code_version": self.code_version}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


def failed_calls(manifest: dict) -> int:
    """LLM calls of this stage that ended in transport errors (allowed by client.max_error_rate, never cached)."""
    return int((manifest.get("llm") or {}).get("errors", 0) or 0)
