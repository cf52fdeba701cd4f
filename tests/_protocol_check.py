"""`implements(cls, protocol)`: what a class lacks of a typing.Protocol, checked on the class itself.

`isinstance(obj, SomeProtocol)` with @runtime_checkable looks at names only, on an instance: a method with other
parameters, or a method where the protocol has an attribute, passes. This compares each member: an attribute must
exist (a class attribute, an annotation such as a dataclass field, a property or `self.<name> = ...` in __init__);
a method must be a method whose parameters (self/cls left out) have the protocol's names and kinds (positional ones
in order, keyword-only ones in any order), and may add parameters only with a default; a parameter with a default in
the protocol needs one in the class too. Names with a leading underscore are no part of a protocol.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Protocol

_MISSING = object()


def protocol_members(protocol: type) -> dict[str, object]:
    """name -> the protocol's declaration (a function, a property, or None for an annotated attribute)."""
    members: dict[str, object] = {}
    for base in reversed(protocol.__mro__):
        if base in (Protocol, object) or not getattr(base, "_is_protocol", False):
            continue
        members.update({name: None for name in base.__dict__.get("__annotations__", {})})
        members.update({name: value for name, value in vars(base).items()
                        if callable(value) or isinstance(value, (property, classmethod, staticmethod))})
    return {n: v for n, v in members.items() if not n.startswith("_")}


def implements(cls: type, protocol: type) -> list[str]:
    """The members of `protocol` that `cls` lacks or implements incompatibly, one line each; [] when it conforms."""
    problems = []
    for name, declared in sorted(protocol_members(protocol).items()):
        if _is_method(declared):
            problems += [f"{name}: {p}" for p in _method_problems(cls, protocol, name, declared)]
        elif _is_method(inspect.getattr_static(cls, name, _MISSING)):
            problems.append(f"{name}: an attribute in {protocol.__name__}, a method in {cls.__name__}")
        elif not _has_attribute(cls, name):
            problems.append(f"{name}: missing")
    return problems


def _is_method(member) -> bool:
    return inspect.isfunction(member) or isinstance(member, (classmethod, staticmethod))


def _has_attribute(cls: type, name: str) -> bool:
    if hasattr(cls, name) or any(name in vars(k).get("__annotations__", {}) for k in cls.__mro__):
        return True
    try:  # an attribute __init__ sets: `self.name = ...`
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__init__)))
    except (OSError, TypeError):  # object.__init__, or no source
        return False
    return any(isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) and n.attr == name
               and isinstance(n.value, ast.Name) and n.value.id == "self" for n in ast.walk(tree))


def _parameters(owner: type, name: str, member) -> list[inspect.Parameter]:
    """The parameters a caller passes: the bound self (or cls) of a method left out."""
    params = list(inspect.signature(getattr(owner, name)).parameters.values())
    return params[1:] if inspect.isfunction(member) else params  # getattr binds a classmethod, not a plain function


def _method_problems(cls: type, protocol: type, name: str, declared) -> list[str]:
    member = inspect.getattr_static(cls, name, _MISSING)
    if member is _MISSING:
        return ["missing"]
    if not _is_method(member):
        return [f"a method in the protocol, not one in {cls.__name__}"]
    want, have = _parameters(protocol, name, declared), _parameters(cls, name, member)
    signature = f"({', '.join(map(str, have))}) for ({', '.join(map(str, want))})"
    # Positional parameters and *args/**kwargs are matched in order; keyword-only ones by name (callers name them).
    keyword_only = {q.name: q for q in have if q.kind == q.KEYWORD_ONLY}
    ordered = [q for q in have if q.kind != q.KEYWORD_ONLY]
    matched = []
    for p in want:
        q = keyword_only.get(p.name) if p.kind == p.KEYWORD_ONLY else \
            next((q for q in ordered if q not in matched), None)
        if q is None or (q.name, q.kind) != (p.name, p.kind):
            return [f"parameters {signature}"]
        if p.default is not inspect.Parameter.empty and q.default is inspect.Parameter.empty:
            return [f"{q.name} needs a default {signature}"]
        matched.append(q)
    extra = [q for q in have if q not in matched and q.default is inspect.Parameter.empty
             and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
    return [f"extra parameter(s) without a default: {', '.join(q.name for q in extra)}"] if extra else []
