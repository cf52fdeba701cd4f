"""Every file of every config group composes and instantiates (cheaply: no model is loaded, nothing started)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import tacos.config  # noqa: F401  (registers the tacos_root resolver)

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["dataset", "tagger", "clustering", "scorer", "selection", "model", "train", "judge", "benchmarks", "infer",
          "llm", "paths", "logger"]
# Values a user must supply for some options (marked ??? in the yaml).
REQUIRED = {
    ("dataset", "jsonl"): ["dataset.path=data/sample/alpaca_tiny.json"],
    ("dataset", "sharegpt"): ["dataset.path=data/sample/alpaca_tiny.json"],
    ("tagger", "reference_files"): ["tagger.path=data/sample/alpaca_tiny.json"],
    ("selection", "external"): ["selection.path=data/sample/alpaca_tiny.json"],
    ("llm", "openai_compatible"): ["llm.base_url=http://127.0.0.1:9/v1", "llm.model=x"],
    ("llm", "pool"): ["llm.endpoints=[http://127.0.0.1:9/v1]", "llm.model=x"],
    ("llm", "vllm"): ["llm.model=/models/x"],
    # AlpacaEval 2's reference outputs come from an installed data package (or a file); here a tiny stand-in
    ("benchmarks", "alpaca_eval2"): [
        "benchmarks.alpaca_eval2.reference_file=tests/benchmarks/data/alpaca_eval_tiny.json"],
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


CASES = [(g, o) for g in GROUPS for o in options(g)]


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=False)


@pytest.mark.parametrize("group,option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_group_file_instantiates(group, option):
    text = (CONF / group / f"{option}.yaml").read_text()
    empty_list = (group, option) == ("benchmarks", "none")  # a list to add your own benchmarks to
    assert "_target_" in text or "defaults:" in text or empty_list, f"{group}/{option}.yaml has no _target_"
    cfg = compose_cfg([f"{group}={option}", *REQUIRED.get((group, option), [])])
    obj = instantiate(cfg[group], _convert_="all")
    assert obj is not None
    if group == "benchmarks":  # a mapping of benchmark objects, each checked against the protocol
        from tacos.benchmarks.suite import check_benchmarks

        if empty_list:
            with pytest.raises(ValueError, match="benchmarks is empty"):
                check_benchmarks(obj)
        else:
            check_benchmarks(obj)
        return
    validate = getattr(obj, "validate", None)
    if validate is not None and (group, option) not in {("tagger", "reference_files"), ("selection", "external")}:
        validate()


@pytest.mark.parametrize("group,option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_no_shipped_config_holds_a_credential(group, option):
    """What hydra.callbacks' RefuseSecrets checks before every run (the hydra node included): no shipped option may
    trip it, while API keys stay in environment variables (`api_key_env` names one)."""
    from tacos.hydra_callbacks import RefuseSecrets

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="run"):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=[f"{group}={option}", *REQUIRED.get((group, option), [])])
    assert set(cfg.hydra.callbacks) == {"refuse_secrets", "sweep_report"}
    RefuseSecrets().on_run_start(cfg)  # exits on a credential


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_overlay_composes(experiment, monkeypatch):
    monkeypatch.setenv("TACOS_LIMA_PATH", str(CONF.parent / "data" / "sample" / "alpaca_tiny.json"))
    cfg = compose_cfg([f"experiment={experiment}"])
    from tacos.pipeline import validate

    assert validate(cfg)


def test_groups_cover_the_paper_grid():
    assert {"llama2_7b", "llama2_13b", "mistral7b", "tiny"} <= set(options("model"))
    assert {"local", "local_large", "openai", "openai_compatible", "vllm"} <= set(options("llm"))
    assert {"contrastive", "single", "length"} <= set(options("scorer"))
    assert {"kmeans", "none"} <= set(options("clustering"))
    assert {"tacos", "random", "longest", "alpagasus", "full", "external"} <= set(options("selection"))


def test_cfg_job_is_fast_and_imports_nothing_heavy():
    import subprocess
    import sys

    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-X", "importtime", "run.py", "--cfg", "job"], cwd=CONF.parent,
                         capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-2000:]
    assert "stages:" in out.stdout and elapsed < 3.0, elapsed
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "llamafactory", "sentence_transformers", "wandb", "transformers"}
    help_out = subprocess.run([sys.executable, "run.py", "--help"], cwd=CONF.parent, capture_output=True, text=True)
    assert help_out.returncode == 0 and "dataset" in help_out.stdout


def test_extras_are_named_so_that_any_pip_finds_them():
    """pip before PEP 685 (this venv's 23.x) compares a requested extra with the metadata's normalized name
    ("local_large" is written as "local-large"), so `.[local_large]` silently installed nothing. Extras are named in
    normalized form, and every extra the install script, the README or the model registry asks for exists."""
    import re
    import tomllib

    from tacos.llm.serving.local_models import REGISTRY

    repo = Path(__file__).resolve().parents[1]
    extras = set(tomllib.loads((repo / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert all(name == re.sub(r"[-_.]+", "-", name).lower() for name in extras), extras
    install = (repo / "scripts" / "install.sh").read_text()
    asked = set(re.findall(r"[A-Z]*EXTRAS:-([\w,-]+)", install)[0].split(","))
    asked |= set(re.findall(r'EXTRAS="\$EXTRAS,([\w-]+)"', install))
    asked |= {m.extra for m in REGISTRY.values() if m.extra}
    readme = (repo / "README.md").read_text()
    asked |= {name for match in re.findall(r"extras?:? `([\w-]+)`|\(the ([\w-]+) extra\)", readme)
              for name in match if name}
    assert asked and asked <= extras, asked - extras
