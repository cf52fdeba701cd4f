"""The package's shape: imports form layers (nothing imports upward, no import loop) and modules stay small.

Every `import`/`from ... import` of a tacos module counts, also the ones inside functions: a lazy import is still a
dependency a reader has to follow.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "tacos"

# Lower layers never import higher ones. A module's layer is the first prefix that matches its dotted name.
LAYERS: list[tuple[str, ...]] = [
    ("tacos", "tacos.records", "tacos.paths", "tacos.config", "tacos.prompts"),
    ("tacos.llm", "tacos.data", "tacos.method"),
    ("tacos.stage", "tacos.store", "tacos.plots", "tacos.rundir"),
    ("tacos.strategies", "tacos.eval", "tacos.sft", "tacos.refiners"),
    ("tacos.stages",),
    ("tacos.pipeline", "tacos.tracking", "tacos.cli", "tacos.hydra_callbacks", "tacos.evaluate_judge"),
]
MAX_LINES = 300


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    assert best is not None, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return best


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tacos")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tacos") and node.level == 0:
            found.add(node.module)
            # `from tacos.llm import client` imports the submodule tacos.llm.client
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}


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
