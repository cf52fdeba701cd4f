"""dataset=alpaca / evol_instruct without their file: the Hugging Face hub copy gives the same records (mocked hub;
there is no network here), and offline the error says the one command that fixes it (for real)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import tacos.config  # noqa: F401  (registers the tacos_root resolver)
from tacos.data import DataError
from tacos.data.hub import OFFLINE_VARS
from tacos.stages.data import DataStage

datasets = pytest.importorskip("datasets")

REPO = Path(__file__).resolve().parents[2]
ALPACA_ROWS = [{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
               {"instruction": "Name a colour.", "input": "", "output": "Blue."},
               {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},  # dropped as a duplicate
               {"instruction": "Say hi.", "input": "", "output": "Hi!"}]
EVOL_ROWS = [{"instruction": "Explain recursion.", "output": "A function that calls itself."},
             {"instruction": "Write a haiku.", "output": "Old pond / a frog jumps / splash"}]


def compose_dataset(option: str, *overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[f"dataset={option}", *overrides])


def fake_hub(monkeypatch, rows: list[dict]) -> list[tuple]:
    """datasets.load_dataset answers with `rows`, as the hub would; returns the calls it got."""
    calls = []

    def load_dataset(name, split=None, **kw):
        calls.append((name, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


@pytest.fixture
def online(monkeypatch):
    for var in OFFLINE_VARS:  # conftest switches the hub off for every test; offline=false would not
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("option, env, hub_name, rows", [
    ("alpaca", "TACOS_ALPACA_PATH", "tatsu-lab/alpaca", ALPACA_ROWS),
    ("evol_instruct", "TACOS_EVOL_PATH", "WizardLMTeam/WizardLM_evol_instruct_70k", EVOL_ROWS)])
def test_the_hub_copy_gives_the_records_of_the_file(option, env, hub_name, rows, tmp_path, monkeypatch, online):
    file = tmp_path / "pool.json"
    file.write_text(json.dumps(rows), encoding="utf-8")
    monkeypatch.setenv(env, str(file))
    from_file = instantiate(compose_dataset(option).dataset).load()

    monkeypatch.setenv(env, str(tmp_path / "not_downloaded.json"))
    # tatsu-lab/alpaca also has a `text` column (the formatted prompt): it must change nothing.
    hub_rows = [{**row, "text": f"### Instruction:\n{row['instruction']}"} for row in rows] if option == "alpaca" \
        else rows
    calls = fake_hub(monkeypatch, hub_rows)
    from_hub = instantiate(compose_dataset(option).dataset).load()

    assert calls == [(hub_name, "train")]
    assert from_hub == from_file and [r.id for r in from_hub] == [r.id for r in from_file]
    assert [r.index for r in from_hub] == [r.index for r in from_file] and from_hub[0].source == option


def test_an_existing_file_is_read_and_the_hub_never_asked(tmp_path, monkeypatch, online):
    file = tmp_path / "alpaca_data.json"
    file.write_text(json.dumps(ALPACA_ROWS), encoding="utf-8")
    monkeypatch.setenv("TACOS_ALPACA_PATH", str(file))
    calls = fake_hub(monkeypatch, [])
    assert len(instantiate(compose_dataset("alpaca").dataset).load()) == 3 and calls == []


def test_without_network_the_error_says_what_to_do(tmp_path, monkeypatch, online):
    monkeypatch.setenv("TACOS_ALPACA_PATH", str(tmp_path / "alpaca_data.json"))

    def no_network(name, split=None, **kw):
        raise ConnectionError("Couldn't reach 'tatsu-lab/alpaca' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    with pytest.raises(DataError, match="Check your network access") as info:
        instantiate(compose_dataset("alpaca").dataset).load()
    assert "`TACOS_ALPACA_PATH=/path/to/alpaca_data.json python run.py dataset=alpaca`" in str(info.value)


def test_the_data_stage_identifies_a_missing_file_by_its_hub_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("TACOS_ALPACA_PATH", str(tmp_path / "alpaca_data.json"))
    missing = DataStage().config_slice(compose_dataset("alpaca"))["dataset"]
    assert missing["hub_fallback"] == "tatsu-lab/alpaca" and missing["file_sha256"] is None
    assert "path_env" not in missing

    (tmp_path / "alpaca_data.json").write_text(json.dumps(ALPACA_ROWS), encoding="utf-8")
    present = DataStage().config_slice(compose_dataset("alpaca"))["dataset"]
    assert present["file_sha256"] and "hub_fallback" not in present and "path_env" not in present

    with pytest.raises(DataError, match="file not found"):  # no hub copy: a missing file stays an error
        DataStage().config_slice(compose_dataset("jsonl", f"dataset.path={tmp_path / 'nope.jsonl'}"))


def test_offline_the_error_gives_the_command_that_fixes_it(tmp_path):
    """The default offline=true, no alpaca_data.json, nothing in the Hugging Face cache: a real run.py."""
    env = {k: v for k, v in os.environ.items() if k not in (*OFFLINE_VARS, "TACOS_ALPACA_PATH")}
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(REPO / "run.py"), "dataset=alpaca", "stages=[data]", "logger=none",
                          f"paths.data_dir={tmp_path / 'data'}", f"paths.output_dir={tmp_path / 'outputs'}",
                          f"hydra.run.dir={tmp_path / 'run'}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    print(f"offline error after {time.monotonic() - t0:.1f} s")
    assert out.returncode != 0
    error = "\n".join(line for line in out.stderr.splitlines() if line.startswith("error: "))
    assert "tatsu-lab/alpaca" in error and f"{tmp_path / 'data' / 'alpaca' / 'alpaca_data.json'} does not" in error
    assert "`python run.py dataset=alpaca offline=false`" in error
    assert "`TACOS_ALPACA_PATH=/path/to/alpaca_data.json python run.py dataset=alpaca`" in error
