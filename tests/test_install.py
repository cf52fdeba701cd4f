"""The install (scripts/install.sh) and the package: the CPU stand-ins for torchvision/torchaudio are what the torch pins
name and satisfy LLaMA-Factory; a wheel carries every repository folder the code reads; `tacos run --help` is the
application's help with the common commands. Fast: no install here (README "Set up" has the measured install)."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import cpu_stand_ins  # noqa: E402


def _pins(name: str) -> dict[str, str]:
    lines = (REPO / "scripts" / name).read_text().splitlines()
    return dict(line.split("==", 1) for line in lines if line and not line.startswith("#"))


def test_the_cpu_pins_name_the_stand_ins_and_they_meet_llamafactorys_requirements(tmp_path):
    from packaging.requirements import Requirement
    from packaging.version import Version

    pins = _pins("torch-cpu.txt")
    assert pins["torch"] == "2.13.0+cpu"
    for name, (version, _, _) in cpu_stand_ins.STAND_INS.items():
        assert pins[name] == version and version.endswith("+tacos.standin")
    try:
        requires = [Requirement(r) for r in metadata.requires("llamafactory") or []]
    except metadata.PackageNotFoundError:
        requires = [Requirement("torchvision>=0.19.0"), Requirement("torchaudio>=2.4.0")]  # llamafactory 0.9.5's
    for req in requires:
        if req.name in cpu_stand_ins.STAND_INS and req.marker is None:
            assert Version(cpu_stand_ins.STAND_INS[req.name][0]) in req.specifier, req
    cuda = _pins("torch-cuda.txt")
    assert set(cuda) == {"torch", "torchvision", "torchaudio"} and not any("+" in v for v in cuda.values())


def test_the_stand_in_wheels(tmp_path):
    cpu_stand_ins.main(str(tmp_path))
    vision = zipfile.ZipFile(next(tmp_path.glob("torchvision-*.whl")))
    assert not [n for n in vision.namelist() if not n.startswith("torchvision-")]  # metadata only: no module
    audio = zipfile.ZipFile(next(tmp_path.glob("torchaudio-*.whl")))
    source = audio.read("torchaudio/__init__.py").decode()
    namespace: dict = {}
    exec(compile(source, "torchaudio", "exec"), namespace)  # noqa: S102  (our own stand-in module)
    with pytest.raises(RuntimeError, match="not supported on a CPU install"):
        namespace["functional"].resample(None, 16000, 8000)
    again = tmp_path / "again"
    cpu_stand_ins.main(str(again))  # the same bytes every time (pip's cache and hashes see one file)
    assert all((again / w.name).read_bytes() == w.read_bytes() for w in tmp_path.glob("*.whl"))


def _bundled() -> set[str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "BUNDLED":
            return set(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no BUNDLED")


def test_the_wheel_carries_every_repository_folder_the_code_reads():
    bundled = _bundled()
    read = set()
    for f in [*(REPO / "conf").rglob("*.yaml")]:
        read |= set(re.findall(r"\$\{paths\.root_dir\}/([\w/.-]+)", f.read_text()))
    for f in (REPO / "tacos").rglob("*.py"):
        read |= set(re.findall(r"REPO_ROOT / \"([\w/.-]+)\"", f.read_text()))
    read.add("data")  # paths.data_dir
    missing = [p for p in sorted(read) if not any(p == b or p.startswith(b + "/") for b in bundled)]
    assert not missing, f"read from the repository but not in setup.py's BUNDLED (an installed wheel lacks them): {missing}"


def test_tacos_run_help_is_the_applications_help():
    out = subprocess.run([sys.executable, "-m", "tacos.cli", "run", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "== Common commands ==" in out.stdout and "scorer/judge:" in out.stdout
    assert len(out.stdout.splitlines()) < 80  # a header and the groups, not the composed config
