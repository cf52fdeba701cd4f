"""tacos.code_identity: the import rule, the closure of a module, and the hash of its bytes, on a toy package."""
from __future__ import annotations

import shutil
from pathlib import Path

from tacos.code_identity import code_identity, import_closure, import_graph, imports

# pkg.top reaches pkg.sub.leaf only through pkg.mid, and pkg.mid imports it inside a function.
TOY = {
    "__init__.py": '"""the toy package"""\n',
    "top.py": "from pkg import mid\n",
    "mid.py": "import json\n\n\ndef value():\n    from pkg.sub.leaf import VALUE\n    return VALUE\n",
    "sub/__init__.py": "",
    "sub/leaf.py": "VALUE = 1\n",
    "unrelated.py": "import pkg.top\n",
}


def _toy(where: Path, **changes: str) -> Path:
    root = where / "pkg"
    for rel, text in {**TOY, **changes}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_import_rule(tmp_path):
    root = _toy(tmp_path)
    assert imports(root / "top.py", root) == {"pkg", "pkg.mid"}  # `from pkg import mid`: mid is a submodule
    assert imports(root / "mid.py", root) == {"pkg.sub.leaf"}  # inside a function; json is not the package's
    assert import_graph(root)["pkg.unrelated"] == {"pkg.top"}  # `import pkg.top`


def test_the_closure_follows_imports_and_every_package_on_the_way(tmp_path):
    root = _toy(tmp_path)
    assert import_closure(["pkg.top"], root) == {"pkg", "pkg.top", "pkg.mid", "pkg.sub", "pkg.sub.leaf"}


def test_the_identity_follows_a_module_reached_only_indirectly(tmp_path):
    before = code_identity(["pkg.top"], _toy(tmp_path / "a"))
    assert code_identity(["pkg.top"], _toy(tmp_path / "b", **{"sub/leaf.py": "VALUE = 2\n"})) != before
    assert code_identity(["pkg.top"], _toy(tmp_path / "c", **{"sub/__init__.py": "# runs on import\n"})) != before


def test_the_identity_ignores_what_the_module_does_not_import_and_where_the_package_lies(tmp_path):
    before = code_identity(["pkg.top"], _toy(tmp_path / "a"))
    assert code_identity(["pkg.top"], _toy(tmp_path / "b", **{"unrelated.py": "X = 1\n"})) == before
    assert code_identity(["pkg.top"], _toy(tmp_path / "elsewhere" / "c")) == before
    assert code_identity(["pkg.top"], _toy(tmp_path / "d"), salt="0.2.0") != before


def test_the_identity_is_computed_once_per_process(tmp_path):
    """A process runs the code it imported when it started: a later edit is not what its outputs follow."""
    root = _toy(tmp_path)
    first = code_identity(["pkg.top"], root)
    (root / "sub" / "leaf.py").write_text("VALUE = 3\n")
    assert code_identity(["pkg.top"], root) == first


def test_a_module_outside_the_package_counts_by_its_own_file(tmp_path):
    root = _toy(tmp_path)
    alone = code_identity(["pkg.top"], root)
    assert code_identity(["pkg.top", "json"], root) != alone
    assert code_identity(["json"], root) == code_identity(["json"], _toy(tmp_path / "b", **{"top.py": ""}))


def test_the_real_package_identity_does_not_depend_on_its_location(tmp_path):
    from tacos.code_identity import PACKAGE_ROOT

    copy = tmp_path / "tacos"
    shutil.copytree(PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_identity(["tacos.stages.tag"], copy) == code_identity(["tacos.stages.tag"])
