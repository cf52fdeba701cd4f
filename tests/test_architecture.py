"""The package's shape: imports form layers (nothing imports upward, no import loop, no import cycle between packages,
no relative import, no stage imports another stage), the applications on top (run.py, measurements/, scripts/) use only
what tacos makes public, modules stay small, and every `_target_` under conf/ (nested ones too) implements its
protocol.

The import graph is tacos.code_identity's, the one whose bytes identify a stage's code: every `import`/`from ... import`
of a tacos module counts, also the ones inside functions (a lazy import is still a dependency a reader has to follow).
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Protocol

import pytest
from _architecture_checks import conf_targets, package_cycles, relative_imports, target_problems
from _protocol_check import implements

from tacos.code_identity import import_graph, imports, module_file

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "tacos"
ROOT = "tacos"  # the package's own __init__; as a prefix it would place every module, so it matches only itself

# Lower layers never import higher ones. A module's layer is the longest entry that is its name or a package above it.
LAYERS: list[tuple[str, ...]] = [
    (ROOT, "tacos.records", "tacos.paths", "tacos.config", "tacos.prompts", "tacos.code_identity", "tacos.command",
     "tacos.run_names", "tacos.memory"),
    ("tacos.llm", "tacos.data", "tacos.method"),
    ("tacos.stage", "tacos.stage_io", "tacos.stage_identity", "tacos.store", "tacos.plots", "tacos.rundir",
     "tacos.wandb_lineage", "tacos.local_compute", "tacos.summary"),
    ("tacos.judges", "tacos.answers"),
    ("tacos.strategies", "tacos.cleaning", "tacos.benchmarks", "tacos.sft", "tacos.refiners"),
    ("tacos.stages",),
    ("tacos.pipeline", "tacos.tracking", "tacos.cli", "tacos.app", "tacos.hydra_callbacks", "tacos.evaluate_judge",
     "tacos.dry_run"),
    ("run", "measurements", "scripts"),  # the applications: they use the package, nothing in it uses them
]
APPLICATIONS = {"run": REPO / "run.py",
                **{f"{p.parent.name}.{p.stem}": p for d in ("measurements", "scripts") for p in (REPO / d).glob("*.py")}}
# run.py is a wrapper of tacos.app (the Hydra main, also `tacos run`), which composes the config and hands it to the
# runner; it stays that thin.
RUN_PY_IMPORTS = {"tacos.app"}
APP_IMPORTS = {"tacos.config", "tacos.hydra_callbacks", "tacos.pipeline", "tacos.tracking", "tacos.records",
               "tacos.stage", "tacos.llm.calling.ledger", "tacos.paths", "tacos.summary", "tacos.command",
               "tacos.local_compute"}
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
    """Every tacos module and every application -> the tacos modules it imports."""
    return {**import_graph(PACKAGE), **{app: imports(path, PACKAGE) for app, path in APPLICATIONS.items()}}


def test_every_module_has_a_layer():
    with pytest.raises(AssertionError, match="add it to LAYERS"):
        _layer("tacos.not_listed")
    assert _layer(ROOT) == 0 and _layer("tacos.llm.calling.client") == 1 and _layer("measurements.bench_x") == len(LAYERS) - 1
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


def _imported_names(path: Path) -> set[str]:
    """Every module name an import statement in the file names, the package's or not."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def test_nothing_in_the_package_imports_an_application():
    # measurements/ and scripts/ put their own folder on sys.path, so a bare `import bench_x` would reach them too
    apps = set(APPLICATIONS) | {app.rsplit(".", 1)[-1] for app in APPLICATIONS}
    found = [f"{p.relative_to(REPO)} imports {name}" for p in sorted(PACKAGE.rglob("*.py"))
             for name in sorted(_imported_names(p)) if name in apps or name.split(".")[0] in ("measurements", "scripts")]
    assert not found, "\n".join(found)


def test_run_py_imports_only_its_allowlist():
    extra = imports(APPLICATIONS["run"], PACKAGE) - RUN_PY_IMPORTS
    assert not extra, f"run.py imports {sorted(extra)}: it only wraps tacos.app"
    extra = imports(PACKAGE / "app.py", PACKAGE) - APP_IMPORTS
    assert not extra, f"tacos/app.py imports {sorted(extra)}: give the work to tacos.pipeline (or widen APP_IMPORTS)"


def _private_uses(path: Path) -> list[str]:
    """Private names (a leading underscore) of tacos the file uses: imported, through a module, or on an object.

    An attribute `x._name` counts unless x is self/cls or a module that is not the package's: an object of unknown
    type in a benchmark or script is most likely one of tacos'."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    outside = {"self", "cls"}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] != ROOT:
                    outside.add(a.asname or a.name.split(".")[0])
                elif any(part.startswith("_") for part in a.name.split(".")):
                    uses.append(f"{node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] != ROOT:
                outside |= {a.asname or a.name for a in node.names}
                continue
            private = [a.name for a in node.names if a.name.startswith("_")]
            if private or any(part.startswith("_") for part in node.module.split(".")):
                uses.append(f"{node.lineno}: from {node.module} import {', '.join(private) or '...'}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if not (isinstance(base, ast.Name) and base.id in outside):
                uses.append(f"{node.lineno}: {ast.unparse(node)}")
    return uses


def _public_names(module: str) -> set[str]:
    """The names `from module import ...` can take: what its top level binds, and its submodules."""
    path = module_file(module, PACKAGE)
    names = {p.stem for p in path.parent.glob("*.py")} | {d.name for d in path.parent.iterdir() if d.is_dir()} \
        if path.name == "__init__.py" else set()
    body = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        else:  # if / try / with / for at the top level bind names too
            body += [child for field in ("body", "orelse", "finalbody", "handlers") for child in getattr(node, field, [])]
    return names


def test_applications_use_public_names_that_exist():
    problems = []
    for app, path in sorted(APPLICATIONS.items()):
        problems += [f"{path.relative_to(REPO)}:{use} is private" for use in _private_uses(path)]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == ROOT:
                if module_file(node.module, PACKAGE) is None:
                    problems.append(f"{path.relative_to(REPO)}:{node.lineno}: no module {node.module}")
                    continue
                missing = [a.name for a in node.names if a.name not in _public_names(node.module)]
                problems += [f"{path.relative_to(REPO)}:{node.lineno}: {node.module} has no {n}" for n in missing]
    assert not problems, "\n".join(problems)


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

    assert implements(StageBase, Stage) == []
    for name in STAGE_ORDER:
        stage = get_stage(name)
        assert isinstance(stage, Stage) and isinstance(stage, StageBase), name
        assert implements(type(stage), Stage) == [], name
        assert stage.name == name


# -- implements(cls, protocol) on toy classes ----------------------------------------------------------------------
class Greeter(Protocol):
    name: str

    @property
    def language(self) -> str: ...
    def greet(self, who: str, *, loud: bool = False) -> str: ...


class Complete:
    name = "c"
    language = "en"

    def greet(self, who: str, *, suffix: str = "", loud: bool = False) -> str:  # extra if optional; any keyword order
        return who


class FromFieldsAndInit:
    name: str  # an annotation (a dataclass field) is an attribute

    def __init__(self):
        self.language = "fr"

    @staticmethod
    def greet(who, *, loud=False):
        return who


def test_implements_accepts_what_a_caller_cannot_tell_apart():
    assert implements(Complete, Greeter) == []
    assert implements(FromFieldsAndInit, Greeter) == []


@pytest.mark.parametrize("body, problem", [
    ({"language": "en", "greet": lambda self, who, *, loud=False: who}, "name: missing"),
    ({"name": "x", "language": "en"}, "greet: missing"),
    ({"name": "x", "language": "en", "greet": "hello"}, "greet: a method in the protocol"),
    ({"name": "x", "language": "en", "greet": lambda self, whom, *, loud=False: whom}, "greet: parameters"),
    ({"name": "x", "language": "en", "greet": lambda self, who, loud=False: who}, "greet: parameters"),  # kind
    ({"name": "x", "language": "en", "greet": lambda self, who, *, loud: who}, "greet: loud needs a default"),
    ({"name": "x", "language": "en", "greet": lambda self, who, n, *, loud=False: who},
     "greet: extra parameter(s) without a default: n"),
    ({"name": "x", "language": "en", "greet": lambda self, who, *, loud=False, n: who},
     "greet: extra parameter(s) without a default: n"),
    ({"name": "x", "language": "en", "greet": lambda self, *, loud=False: None}, "greet: parameters"),
    ({"name": "x", "language": "en", "greet": lambda self, *args, **kwargs: None}, "greet: parameters"),
    ({"name": None, "language": "en", "greet": lambda self, who, *, loud=False: who}, None),  # None is a value
    ({"name": lambda self: "x", "language": "en", "greet": lambda self, who, *, loud=False: who},
     "name: an attribute in Greeter, a method in"),
])
def test_implements_names_what_is_missing_or_incompatible(body, problem):
    found = implements(type("Toy", (), body), Greeter)
    assert found == [] if problem is None else len(found) == 1 and found[0].startswith(problem), found


def test_implements_handles_classmethods_and_inherited_members():
    class Base:
        name, language = "b", "en"

        @classmethod
        def greet(cls, who, *, loud=False):
            return who

    class Child(Base):
        pass

    assert implements(Child, Greeter) == []


# -- every `_target_` under conf/, nested ones too -----------------------------------------------------------------
JUDGE = "a judge"  # PairJudge or RatingJudge, by what the class offers


def _resolve_protocol(cls: type, protocol):
    from tacos.judges.base import PairJudge, RatingJudge

    return (PairJudge if hasattr(cls, "judge_pairs") else RatingJudge) if protocol is JUDGE else protocol


def _rules() -> dict:
    from tacos.benchmarks.base import Benchmark
    from tacos.answers.jobs import AnswerGenerator
    from tacos.judges.readout import Readout
    from tacos.llm.likelihoods.likelihood import ScoringLM
    from tacos.strategies.clusterers import Clusterer
    from tacos.strategies.scorers import Scorer
    from tacos.strategies.selectors import Selector
    from tacos.strategies.taggers import Tagger

    return {
        "by_group": {"tagger": Tagger, "clustering": Clusterer, "scorer": Scorer, "selection": Selector,
                     "lm": ScoringLM, "benchmark": Benchmark, "infer/generator": AnswerGenerator,
                     "scorer/judge": JUDGE, "judge": JUDGE, "readout": Readout},
        "by_key": {"judge": JUDGE, "pair_judge": JUDGE, "lm": ScoringLM, "readout": Readout},
        # Settings records and objects no protocol describes: their YAML keys are still checked against the class.
        "plain_groups": {"dataset", "paths", "model", "train", "infer", "guard", "llm", "logger", "clean"},
        "plain_keys": {"text_parser", "checks", "builder", "gate", "normalize", "export", "refine", "report", "judging",
                       "refuse_secrets", "sweep_report"},
    }


def test_every_target_under_conf_implements_its_protocol():
    """Top-level and nested `_target_`s (a scorer's judge, the guard's checks and their judges, a judge's parser, a
    benchmark's grader): each imports, takes its YAML keys as parameters and has its place's protocol."""
    targets = list(conf_targets(REPO / "conf"))
    assert len(targets) >= 80 and sum(1 for *_, keys, _ in targets if keys) >= 20  # the nested ones are seen
    problems = target_problems(REPO / "conf", _resolve_protocol, **_rules())
    # judges built in code or only from a benchmark's own YAML
    for cls in ("tacos.judges.combined.WeightedRating", "tacos.judges.fastchat.FastChatSingleJudge"):
        module, _, name = cls.rpartition(".")
        c = getattr(importlib.import_module(module), name)
        problems += [f"{cls}: {p}" for p in implements(c, _resolve_protocol(c, JUDGE))]
    assert not problems, "\n".join(problems)


def test_the_target_check_catches_a_nested_target_that_breaks_its_protocol(tmp_path):
    (tmp_path / "scorer" / "judge").mkdir(parents=True)
    (tmp_path / "scorer" / "judge" / "bad.yaml").write_text(
        "_target_: tacos.judges.combined.GuardedRatingJudge\nname: bad\nguard: {_target_: tacos.judges.combined.Guard}\n"
        "judge:\n  _target_: tacos.judges.parsers.JsonScore\n  lo: 1\n  hi: 6\n  typo: 3\n")
    (tmp_path / "tagger").mkdir()
    (tmp_path / "tagger" / "t.yaml").write_text("_target_: tacos.strategies.taggers.OpenTagger\nfoo: {_target_: x.Y}\n")
    problems = target_problems(tmp_path, _resolve_protocol, **_rules())
    text = "\n".join(problems)
    assert "bad.yaml:judge tacos.judges.parsers.JsonScore: no parameter 'typo'" in text
    assert "bad.yaml:judge tacos.judges.parsers.JsonScore (RatingJudge): rate: missing" in text
    assert "t.yaml:<top> tacos.strategies.taggers.OpenTagger: no parameter 'foo'" in text
    assert "t.yaml:foo x.Y: does not import" in text


# -- cycles between packages, relative imports ---------------------------------------------------------------------
# Known cycles between packages, allowed by name (printed) until the refactor that removes them: none today (issue 22
# item 2 dissolved tacos/answers/, whose cycle with tacos/benchmarks/ was the last).
KNOWN_PACKAGE_CYCLES: dict[frozenset[str], str] = {}


def test_no_import_cycles_between_packages():
    """tacos.a imports tacos.b and tacos.b imports tacos.a (directly or through other packages), at package
    granularity: the layer test cannot see a cycle inside one layer. Allowed: KNOWN_PACKAGE_CYCLES, printed."""
    found = package_cycles(import_graph(PACKAGE))
    for group, _ in found:
        if group in KNOWN_PACKAGE_CYCLES:
            print(f"allowed package cycle {sorted(group)}: {KNOWN_PACKAGE_CYCLES[group]}")
    new = [f"{' <-> '.join(sorted(g))}:\n    " + "\n    ".join(why) for g, why in found
           if g not in KNOWN_PACKAGE_CYCLES]
    assert not new, "import cycles between packages:\n" + "\n".join(new)


def test_the_cycle_check_catches_a_synthetic_cycle():
    graph = {"tacos": set(), "tacos.a.x": {"tacos.b.y", "tacos"}, "tacos.b.y": {"tacos.c"}, "tacos.c": {"tacos.a.z"},
             "tacos.a.z": set(), "tacos.d": {"tacos.a.x"}, "tacos.e.one": {"tacos.e.two"}, "tacos.e.two": {"tacos.e.one"}}
    assert package_cycles(graph) == [(frozenset({"tacos.a", "tacos.b", "tacos.c"}),
                                      ["tacos.a.x -> tacos.b.y", "tacos.b.y -> tacos.c", "tacos.c -> tacos.a.z"])]
    assert package_cycles({"tacos.a.x": {"tacos.b.y"}, "tacos.b.y": set()}) == []  # one way only: no cycle


def test_no_relative_imports(tmp_path):
    files = [*PACKAGE.rglob("*.py"), *APPLICATIONS.values(), *(REPO / "tests").rglob("*.py")]
    found = [f"{p.relative_to(REPO)}:{line}" for p in sorted(files) for line in relative_imports(p)]
    assert not found, "relative imports (write the absolute module):\n" + "\n".join(found)
    (tmp_path / "m.py").write_text("import os\nfrom . import a\ndef f():\n    from ..b import c\n")
    assert relative_imports(tmp_path / "m.py") == ["2: from . import a", "4: from ..b import c"]
