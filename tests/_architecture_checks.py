"""Checkers behind tests/test_architecture.py that are tested on synthetic input too: import cycles between packages,
relative imports, and every `_target_` under conf/ (nested ones too) checked against its protocol and its YAML keys.
"""
from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _protocol_check import implements

HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}


# -- cycles between packages -----------------------------------------------------------------------------------------
def package_of(module: str, depth: int = 2) -> str:
    """tacos.benchmarks.suite -> tacos.benchmarks; a top-level module (tacos.stage) is its own package."""
    return ".".join(module.split(".")[:depth])


def package_edges(graph: dict[str, set[str]], root: str = "tacos") -> dict[str, dict[str, list[str]]]:
    """package -> package it imports -> the module imports behind that edge ("a.x -> b.y"); the root's own __init__
    (which every module's import runs) is no package of its own."""
    edges: dict[str, dict[str, list[str]]] = {}
    for m, deps in graph.items():
        for d in deps:
            a, b = package_of(m), package_of(d)
            if root not in (m, d) and a != b:
                edges.setdefault(a, {}).setdefault(b, []).append(f"{m} -> {d}")
    return edges


def package_cycles(graph: dict[str, set[str]], root: str = "tacos") -> list[tuple[frozenset[str], list[str]]]:
    """The groups of packages that import each other (strongly connected, 2 or more), each with the module imports
    that close it, sorted."""
    edges = package_edges(graph, root)
    nodes = sorted(set(edges) | {b for targets in edges.values() for b in targets})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[frozenset[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm (the graph has a few dozen packages: recursion is fine)
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(frozenset(group))

    for v in nodes:
        if v not in index:
            connect(v)
    return sorted(((g, sorted(i for a in g for b in g for i in edges.get(a, {}).get(b, []))) for g in groups),
                  key=lambda x: sorted(x[0]))


# -- relative imports ----------------------------------------------------------------------------------------------
def relative_imports(path: Path) -> list[str]:
    """`from . import x` / `from ..a import b` in the file, as "line: statement"."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{n.lineno}: {ast.unparse(n)}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]


# -- `_target_`s under conf/ ---------------------------------------------------------------------------------------
def conf_targets(conf_dir: Path) -> Iterator[tuple[str, str, tuple[str, ...], dict]]:
    """(file, group, key path, mapping) for every mapping with a `_target_` in the YAML files of `conf_dir`, at any
    depth; a list item is the key "[]". The group is the file's folder (config.yaml's: "")."""
    import yaml

    def walk(node: Any, keys: tuple[str, ...]):
        if isinstance(node, dict):
            if "_target_" in node:
                yield keys, node
            for k, v in node.items():
                yield from walk(v, keys + (str(k),))
        elif isinstance(node, list):
            for v in node:
                yield from walk(v, keys + ("[]",))

    for f in sorted(conf_dir.rglob("*.yaml")):
        group = str(f.parent.relative_to(conf_dir)).replace("\\", "/")
        for keys, node in walk(yaml.safe_load(f.read_text(encoding="utf-8")) or {}, ()):
            yield str(f.relative_to(conf_dir)), "" if group == "." else group, keys, node


class Unplaced(LookupError):
    """A `_target_` at a place the rules do not name (say its protocol, or that it has none)."""


def protocol_at(group: str, keys: tuple[str, ...], by_group: dict[str, Any], by_key: dict[str, Any],
                plain_groups: set[str], plain_keys: set[str]) -> Any:
    """The protocol an object at (group, key path) must implement; None for a place of plain settings."""
    named = [k for k in keys if k != "[]"]
    if named:
        last = named[-1]
        if last in by_key:
            return by_key[last]
        if last in plain_keys:
            return None
        raise Unplaced(f"key {'.'.join(keys)!r} of group {group!r}")
    if group in by_group:
        return by_group[group]
    if group in plain_groups:
        return None
    raise Unplaced(f"group {group!r}")


def target_problems(conf_dir: Path, resolve_protocol: Callable[[type, Any], Any], **rules) -> list[str]:
    """One line per `_target_` under conf_dir that does not import, does not accept its YAML keys as parameters, sits
    at a place the rules do not name, or lacks what its protocol declares."""
    problems = []
    for file, group, keys, node in conf_targets(conf_dir):
        where = f"{file}:{'.'.join(keys) or '<top>'} {node['_target_']}"
        try:
            module, _, name = str(node["_target_"]).rpartition(".")
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as e:
            problems.append(f"{where}: does not import ({e})")
            continue
        params = inspect.signature(cls).parameters
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            unknown = sorted(k for k in node if k not in HYDRA_KEYS and k != "defaults" and k not in params)
            problems += [f"{where}: no parameter {k!r}" for k in unknown]
        try:
            protocol = protocol_at(group, keys, **rules)
        except Unplaced as e:
            problems.append(f"{where}: no rule for {e}: name its protocol or add it to the plain places")
            continue
        if protocol is not None:
            protocol = resolve_protocol(cls, protocol)
            problems += [f"{where} ({protocol.__name__}): {p}" for p in implements(cls, protocol)]
    return problems
