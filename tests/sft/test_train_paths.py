"""The README's training commands as a user types them: from the repository root, with the default *relative*
`paths.output_dir` (project issue 12, item 1). LLaMA-Factory runs in the stage folder, so every path the stage hands
to it must be absolute (or, for the recipe's own files, relative to that folder); a relative
`outputs/models/tiny-llama` made it fail with `HFValidationError: Repo id must be in the form 'repo_name'`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

pytest.importorskip("llamafactory")
pytest.importorskip("deepspeed")
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def relative_output_dir():
    """outputs/_test_<uuid>, relative to the repository root (the working directory of the runs); removed after."""
    rel = Path("outputs") / f"_test_{uuid.uuid4().hex[:10]}"
    yield rel
    shutil.rmtree(REPO / rel, ignore_errors=True)


def run(args: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    env.pop("TACOS_OUTPUT_DIR", None)  # the default output dir is what is tested (paths.output_dir is set below)
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env, check=False)


def test_readme_train_command_with_relative_output_dir(relative_output_dir):
    rel_out = relative_output_dir / "trained"  # train.output_dir relative to the working directory, as the README has it
    out = run(["stages=[data,clean,select,export,train]", "selection=random", "selection.budget=20", "dataset.limit=60",
               "model=tiny", "logger=none", f"paths.output_dir={relative_output_dir}", f"train.output_dir={rel_out}"])
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    manifests = list((REPO / relative_output_dir / "runs").glob("*/*/train/manifest.json"))
    assert len(manifests) == 1, manifests
    stage = manifests[0].parent
    s = json.loads(manifests[0].read_text(encoding="utf-8"))["stats"]
    assert s["launched"] and s["global_step"] == 10  # 20 rows / batch 4 -> 5 steps x 2 epochs
    assert s["loss_last"] < s["loss_first"]
    assert Path(s["output_dir"]) == (REPO / rel_out).absolute() and (REPO / rel_out / "config.json").is_file()
    # what the child process was handed: absolute paths, except the recipe's own files, which are named relative to
    # the stage folder (the child's working directory) so that the kept train.yaml reproduces the run from there
    args = yaml.safe_load((stage / "train.yaml").read_text(encoding="utf-8"))
    for key in ("model_name_or_path", "output_dir"):
        assert Path(args[key]).is_absolute(), (key, args[key])
    assert args["dataset_dir"] == "." and (stage / args["deepspeed"]).is_file()
    assert Path(args["model_name_or_path"]) == (REPO / relative_output_dir / "models" / "tiny-llama").absolute()
    info = json.loads((stage / "dataset_info.json").read_text(encoding="utf-8"))
    assert all(Path(e["file_name"]).is_absolute() for e in info.values())
    assert Path(s["model_name_or_path"]).is_absolute()

    # train.dataset given relative to the working directory: generated and validated by LLaMA-Factory's own parser
    # (train.launch=false; the launch itself was shown above)
    export = manifests[0].parents[1] / "export"
    again = run(["stages=[train]", "model=tiny", "logger=none", f"paths.output_dir={relative_output_dir}",
                 f"train.dataset={export.relative_to(REPO)}", "train.launch=false",
                 f"hydra.run.dir={relative_output_dir}/second"])
    assert again.returncode == 0, (again.stdout[-3000:], again.stderr[-3000:])
    second = REPO / relative_output_dir / "second" / "train"
    s2 = json.loads((second / "manifest.json").read_text())["stats"]
    assert s2["launched"] is False
    assert Path(s2["dataset_file"]).is_absolute() and Path(s2["dataset_file"]).parent == export.resolve()
    info2 = json.loads((second / "dataset_info.json").read_text(encoding="utf-8"))
    assert all(Path(e["file_name"]).is_absolute() for e in info2.values())
