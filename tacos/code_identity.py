"""The package's import graph, and the identity of the code a module runs: the bytes of its import closure.

One import rule serves two readers: tests/test_architecture.py checks the layers on this graph, and the runner
(tacos.pipeline) hashes a stage's closure in it, so "what a stage depends on" means the same thing in both places.
The rule: every `import tacos.x` and `from tacos.x import y` counts, also inside a function (a lazy import is still
code the module runs); `from tacos.x import y` where y is a submodule counts tacos.x.y as well. Relative imports are
not followed (the package has none). This module imports nothing from the package: it sits in the lowest layer.

What a component's objects add (object_modules): the module of every object nested in it, at any depth, the package's
and a user's own (a `_target_` class in a module of theirs); a module of the standard library or of an installed
third-party distribution (site-packages) is left out: its bytes are the installed version's, not the project's code.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parent  # tacos/


def module_name(path: Path, root: Path) -> str:
    """tacos/llm/calling/client.py -> tacos.llm.calling.client, tacos/llm/__init__.py -> tacos.llm (root is the package folder)."""
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
    every package on the way (importing tacos.llm.calling.client runs tacos/__init__.py and tacos/llm/__init__.py first)."""
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

    A module outside the package (a config `_target_` in a user's own module) counts by its own file and the package
    modules that file imports (with their closure); its other imports are not followed. Identical copies of the
    package in two places have the same identity."""
    return _code_identity(frozenset(modules), (root or PACKAGE_ROOT).resolve(), salt)


@functools.cache
def _code_identity(modules: frozenset[str], root: Path, salt: str) -> str:
    outside = {m: _outside_file(m) for m in modules if module_file(m, root) is None}
    # An outside module's own imports of the package count like the stage's (its other imports are not followed).
    inside = {m for m in modules if module_file(m, root)} | \
        {m for f in outside.values() if f is not None and f.suffix == ".py" for m in imports(f, root)}
    files = {str(module_file(m, root).relative_to(root)): module_file(m, root) for m in import_closure(inside, root)}
    files |= {f"<outside>/{m}": f for m, f in outside.items() if f is not None}
    h = hashlib.sha256(salt.encode())
    for rel in sorted(files):
        data = files[rel].read_bytes()
        # Length-prefixed, so no (name, bytes) sequence can be read as another.
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _outside_file(module: str) -> Path | None:
    """The source file of a module outside the package: the loaded one's, else where an import would find it."""
    loaded = sys.modules.get(module)
    origin = getattr(loaded, "__file__", None) if loaded is not None else None
    if origin is None:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):  # __main__ without a spec, a parent that does not import
            spec = None
        origin = spec.origin if spec is not None else None
    return Path(origin) if origin and Path(origin).is_file() else None


_SCALARS = (str, bytes, int, float, complex, bool, type(None), Path)


def _installed_roots() -> tuple[str, ...]:
    """Folders whose modules are not the project's: the standard library and the site-packages of this Python."""
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if paths.get(k)}
    return tuple(str(Path(r).resolve()) for r in roots)


@functools.cache
def is_project_module(module: str) -> bool:
    """A module whose bytes are the project's code: the package's, or a user's own (outside the standard library and
    the installed distributions). Built-in and frozen modules (no file) are not."""
    if module == PACKAGE_ROOT.name or module.startswith(PACKAGE_ROOT.name + "."):
        return True
    origin = _outside_file(module)
    if origin is None:
        return False
    where = str(origin.resolve())
    return not any(where == r or where.startswith(r + "/") for r in _installed_roots()) and \
        not {"site-packages", "dist-packages"} & set(origin.parts)


def object_modules(obj: Any) -> set[str]:
    """The project modules (is_project_module) of a component's class and of every object nested in it, at any depth
    (a scorer's judge, the judge's guard and its checks, their scoring model): Hydra builds those from `_target_`s, so
    no import leads to them. Containers (dict, list, tuple, set, functools.partial) are walked; an object is walked
    into (its attributes) when its class is the project's; each object is visited once (by id), so cycles end. A
    class's bases count too (a user's subclass of a tacos class), and a class or function held as a value counts by
    its module."""
    found: set[str] = set()
    seen: set[int] = set()
    todo = [obj]
    while todo:
        o = todo.pop()
        if isinstance(o, _SCALARS) or id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, dict):
            todo += list(o.values())
            continue
        if isinstance(o, (list, tuple, set, frozenset)):
            todo += list(o)
            continue
        if isinstance(o, functools.partial):
            todo += [o.func, *o.args, *o.keywords.values()]
            continue
        if isinstance(o, type) or callable(o) and hasattr(o, "__code__"):  # a class or a function as a value
            found |= {m for m in _defining_modules(o) if is_project_module(m)}
            continue
        own = {m for m in _defining_modules(type(o)) if is_project_module(m)}
        found |= own
        if type(o).__module__ in own:
            todo += list(_attributes(o))
    return found


def _defining_modules(thing: Any) -> set[str]:
    classes = thing.__mro__ if isinstance(thing, type) else (thing,)
    return {c.__module__ for c in classes if isinstance(getattr(c, "__module__", None), str)}


def _attributes(obj: Any) -> list[Any]:
    values = list(vars(obj).values()) if hasattr(obj, "__dict__") else []
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in [slots] if isinstance(slots, str) else slots:
            if hasattr(obj, name) and name not in ("__dict__", "__weakref__"):
                values.append(getattr(obj, name))
    return values
