"""The package's shape: imports form layers (nothing imports upward, no import loop, no stage imports another stage)
and modules stay small.

The import graph is tacos.code_identity's, the one whose bytes identify a stage's code: every `import`/`from ... import`
of a tacos module counts, also the ones inside functions (a lazy import is still a dependency a reader has to follow).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tacos.code_identity import import_graph

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "tacos"
ROOT = "tacos"  # the package's own __init__; as a prefix it would place every module, so it matches only itself

# Lower layers never import higher ones. A module's layer is the longest entry that is its name or a package above it.
LAYERS: list[tuple[str, ...]] = [
    (ROOT, "tacos.records", "tacos.paths", "tacos.config", "tacos.prompts", "tacos.code_identity"),
    ("tacos.llm", "tacos.data", "tacos.method"),
    ("tacos.stage", "tacos.stage_io", "tacos.store", "tacos.plots", "tacos.rundir"),
    ("tacos.strategies", "tacos.eval", "tacos.sft"),
    ("tacos.stages",),
    ("tacos.pipeline", "tacos.tracking", "tacos.cli", "tacos.hydra_callbacks", "tacos.evaluate_judge"),
]
MAX_LINES = 300


def _layer(module: str) -> int:
    best, best_len = None, -1
    for i, entries in enumerate(LAYERS):
        for e in entries:
            matches = module == e or (e != ROOT and module.startswith(e + "."))
            if matches and len(e) > best_len:
                best, best_len = i, len(e)
    assert best is not None, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return best


def _graph() -> dict[str, set[str]]:
    return import_graph(PACKAGE)


def test_every_module_has_a_layer():
    with pytest.raises(AssertionError, match="add it to LAYERS"):
        _layer("tacos.not_listed")
    assert _layer(ROOT) == 0 and _layer("tacos.llm.client") == 1
    for module in _graph():
        _layer(module)


def test_no_module_imports_upward():
    upward = [f"{m} (layer {_layer(m)}) imports {i} (layer {_layer(i)})"
              for m, deps in sorted(_graph().items()) for i in sorted(deps) if _layer(i) > _layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_loops():
    graph = _graph()
    loops, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "active"
        for d in sorted(graph[m]):
            if state.get(d) == "active":
                loops.append(" -> ".join(stack[stack.index(d):] + [d]) if d in stack else f"{m} -> {d}")
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    # A package's __init__ re-exporting its own submodules is not a loop a reader has to follow.
    loops = [lp for lp in loops if not _init_reexport(lp)]
    assert not loops, "\n".join(loops)


def _init_reexport(loop: str) -> bool:
    names = loop.split(" -> ")
    return any(b.startswith(a + ".") or a.startswith(b + ".") for a, b in zip(names, names[1:]))


def test_no_stage_imports_another_stage():
    """What two stages share (the pool, the clusters) lives below them (tacos.stage_io), so a stage's code is its own
    module plus lower layers. The registry, tacos/stages/__init__.py, is no stage."""
    stages = {m: deps for m, deps in import_graph(PACKAGE).items() if m.startswith("tacos.stages.")}
    crossing = [f"{m} imports {d}" for m, deps in sorted(stages.items()) for d in sorted(deps)
                if d == "tacos.stages" or d.startswith("tacos.stages.")]
    assert not crossing, "\n".join(crossing)


def test_modules_are_small_or_say_why():
    big = []
    for p in sorted(PACKAGE.rglob("*.py")):
        lines = p.read_text(encoding="utf-8").splitlines()
        doc = ast.get_docstring(ast.parse("\n".join(lines))) or ""
        if len(lines) > MAX_LINES and "over 300 lines" not in doc:
            big.append(f"{p.relative_to(REPO)}: {len(lines)} lines")
    assert not big, "modules over 300 lines without a reason in their docstring:\n" + "\n".join(big)


def test_stages_follow_the_contract():
    from tacos.stage import Stage, StageBase
    from tacos.stages import STAGE_ORDER, get_stage

    for name in STAGE_ORDER:
        stage = get_stage(name)
        assert isinstance(stage, Stage) and isinstance(stage, StageBase), name
        assert stage.name == name
