"""The package's import graph, and the identity of the code a module runs: the bytes of its import closure.

One import rule serves two readers: tests/test_architecture.py checks the layers on this graph, and the runner
(tacos.pipeline) hashes a stage's closure in it, so "what a stage depends on" means the same thing in both places.
The rule: every `import tacos.x` and `from tacos.x import y` counts, also inside a function (a lazy import is still
code the module runs); `from tacos.x import y` where y is a submodule counts tacos.x.y as well. Relative imports are
not followed (the package has none). This module imports nothing from the package: it sits in the lowest layer.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parent  # tacos/


def module_name(path: Path, root: Path) -> str:
    """tacos/llm/client.py -> tacos.llm.client, tacos/llm/__init__.py -> tacos.llm (root is the package folder)."""
    parts = Path(path).relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(module: str, root: Path) -> Path | None:
    """The file of a module of the package rooted at `root`; None for a name that is no module there."""
    head, *rest = module.split(".")
    if head != root.name:
        return None
    base = root.joinpath(*rest)
    for candidate in (base / "__init__.py", base.with_suffix(".py") if rest else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def imports(path: Path, root: Path) -> set[str]:
    """The package modules the file at `path` imports (any file: a module of the package, run.py, a script)."""
    return set(_imports(str(Path(path).resolve()), str(root.resolve())))


@functools.cache
def _imports(path: str, root_str: str) -> frozenset[str]:
    # Cached per process: a process runs the code it imported at start, so its bytes then are what its outputs follow.
    root = Path(root_str)
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # kept below only where it is a submodule
    return frozenset(m for m in found if module_file(m, root) is not None)


def import_graph(root: Path = PACKAGE_ROOT) -> dict[str, set[str]]:
    """Every module of the package -> the other package modules it imports."""
    graph = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        graph[name] = imports(path, root) - {name}
    return graph


def import_closure(modules: Iterable[str], root: Path = PACKAGE_ROOT) -> set[str]:
    """The package modules that importing `modules` executes: their imports, transitively, and the `__init__` of
    every package on the way (importing tacos.llm.client runs tacos/__init__.py and tacos/llm/__init__.py first)."""
    todo, seen = [m for m in modules if module_file(m, root)], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += imports(module_file(module, root), root)
    return seen


def code_identity(modules: Iterable[str], root: Path | None = None, salt: str = "") -> str:
    """sha256 over the sorted (path relative to the package folder, bytes) of the import closure of `modules`.

    A module outside the package (a config `_target_` in a user's own module) counts by its own file only: its imports
    are not followed. Identical copies of the package in two places have the same identity."""
    return _code_identity(frozenset(modules), (root or PACKAGE_ROOT).resolve(), salt)


@functools.cache
def _code_identity(modules: frozenset[str], root: Path, salt: str) -> str:
    files = {str(module_file(m, root).relative_to(root)): module_file(m, root) for m in import_closure(modules, root)}
    for outside in modules - {m for m in modules if module_file(m, root)}:
        spec = importlib.util.find_spec(outside)
        if spec is not None and spec.origin and Path(spec.origin).is_file():
            files[f"<outside>/{outside}"] = Path(spec.origin)
    h = hashlib.sha256(salt.encode())
    for rel in sorted(files):
        data = files[rel].read_bytes()
        # Length-prefixed, so no (name, bytes) sequence can be read as another.
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def object_modules(obj: Any, depth: int = 6) -> set[str]:
    """The modules of a component's class and of every object nested in it (a scorer's judge, the judge's guard and
    its signals, their scoring model): Hydra builds those from `_target_`s, so no import leads to them."""
    out = {type(obj).__module__}
    if depth == 0:
        return out
    children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else \
        vars(obj).values() if hasattr(obj, "__dict__") and type(obj).__module__.startswith("tacos") else ()
    for child in children:
        if not isinstance(child, (str, bytes, int, float, bool, type(None))):
            out |= object_modules(child, depth - 1)
    return {m for m in out if m.startswith("tacos")}
