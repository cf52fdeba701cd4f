"""Credentials never reach disk. A key given in the config (by a secret-looking key name, a key-looking value, a
credential inside a URL) is refused before Hydra writes anything (conf/config.yaml hydra.callbacks), for single runs
and for sweeps on every launcher; run.py refuses again and scrubs whatever Hydra already wrote if that check is
bypassed; W&B gets a redacted config and a redacted command line. Names of environment variables stay legitimate."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import run_cli
from tacos.config import find_secrets, flatten, override_secrets, redact, redact_text

# A credential that looks like no known key format (no sk-/hf_ prefix), built at run time: no key-shaped literal here.
K = "zq" + "PLAINSECRET" + "7731"
QUICK = ["stages=[data]", "logger=wandb"]  # if a key got through, W&B would start and write its files too

LEAKS = {
    "openai_api_key": [f"+llm.openai_api_key={K}"],
    "api_key": [f"+llm.api_key={K}"],
    "authorization_header": [f"+llm.headers.authorization=Bearer {K}"],
    "url_userinfo": ["llm=openai_compatible", "llm.model=x", f"llm.base_url=https://user:{K}@host/v1"],
    "url_query": ["llm=openai_compatible", "llm.model=x", f"llm.base_url='https://host/v1?api_key={K}'"],
    "swept": [f"+llm.x_api_key=a1b2c3d4,{K}"],  # a sweep only (a single run refuses a list of values itself)
}


def leaks(root: Path) -> list[Path]:
    """`grep -r K root`: every file under root that holds the key (text or binary)."""
    return [p for p in root.rglob("*") if p.is_file() and K.encode() in p.read_bytes()]


@pytest.mark.parametrize("case", LEAKS)
def test_a_key_in_an_override_is_refused_before_anything_is_written(case, tmp_path):
    run_dir, sweep_dir = tmp_path / "run", tmp_path / "sweep"
    common = [*LEAKS[case], *QUICK, f"paths.output_dir={tmp_path / 'outputs'}"]
    sweep = run_cli(["-m", *common, "dataset.limit=4,5", f"hydra.sweep.dir={sweep_dir}"])
    single = sweep if case == "swept" else run_cli([*common, f"hydra.run.dir={run_dir}"])
    for out in (single, sweep):
        assert out.returncode == 2, out.stderr[-2000:]
        assert "credential" in out.stderr and "OPENAI_API_KEY" in out.stderr, out.stderr[-2000:]
        assert K not in out.stdout + out.stderr  # the message names the entry, never its value
    # Refused before Hydra wrote anything: no run dir, no sweep dir (multirun.yaml), no job launched.
    assert not run_dir.exists() and not sweep_dir.exists() and not (tmp_path / "outputs").exists()
    assert leaks(tmp_path) == []


@pytest.mark.parametrize("launcher", ["submitit_local", "joblib"])
def test_a_sweep_with_a_key_launches_no_job_on_other_launchers(launcher, tmp_path):
    """submitit pickles the config of every job into <sweep>/.submitit; joblib hands it to worker processes."""
    pytest.importorskip(f"hydra_plugins.hydra_{launcher.split('_')[0]}_launcher")
    out = run_cli(["-m", f"hydra/launcher={launcher}", f"+llm.openai_api_key={K}", *QUICK, "dataset.limit=4,5",
                   f"paths.output_dir={tmp_path / 'outputs'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert out.returncode == 2 and "credential" in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "sweep").exists()
    assert leaks(tmp_path) == []


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_run_py_refuses_and_scrubs_when_the_early_check_is_bypassed(mode, tmp_path):
    """Without the callback Hydra writes .hydra/{config,hydra,overrides}.yaml (and the sweep's multirun.yaml) before
    run.py starts: run.py refuses the job and scrubs those files, override_dirname included."""
    common = ["~hydra.callbacks.refuse_secrets", f"+llm.openai_api_key={K}", f"+llm.headers.authorization=Bearer {K}",
              *QUICK, f"paths.output_dir={tmp_path / 'outputs'}"]
    if mode == "run":
        out = run_cli([*common, f"hydra.run.dir={tmp_path / 'run'}"])
        written = tmp_path / "run"
    else:
        out = run_cli(["-m", *common, "dataset.limit=4,5", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
        written = tmp_path / "sweep"
        assert (written / "multirun.yaml").is_file()
    assert out.returncode != 0 and "credential" in out.stderr, out.stderr[-2000:]
    assert list(written.rglob(".hydra/hydra.yaml"))  # Hydra did write them ...
    assert leaks(tmp_path) == []  # ... but not the key
    assert not list(written.rglob("wandb"))  # W&B never started


def test_legitimate_config_still_runs(tmp_path):
    """The NAME of an environment variable and a plain local URL are not credentials."""
    out = run_cli(["llm=openai_compatible", "llm.model=x", "llm.base_url=http://127.0.0.1:8000/v1",
                   "llm.api_key_env=OPENAI_API_KEY", "stages=[data]", "logger=none", "dataset.limit=4",
                   f"paths.output_dir={tmp_path / 'outputs'}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "run" / "data" / "manifest.json").is_file()


# -- what is a credential ----------------------------------------------------------------------------------------
SECRET_ENTRIES = [
    {"openai_api_key": K}, {"api_key": K}, {"apikey": K}, {"api-key": K}, {"x-api-key": K}, {"X-Api-Key": K},
    {"authorization": f"Bearer {K}"}, {"Authorization": f"Basic {K}"}, {"bearer": K}, {"token": K},
    {"hub_token": K}, {"access_token": K}, {"refresh-token": K}, {"db_password": K}, {"password": K}, {"passwd": K},
    {"client_secret": K}, {"secret": K}, {"aws_secret_access_key": K}, {"private_key": K}, {"wandb_key": K},
    {"cookie": K}, {"credentials": K}, {"token": 123456},
    {"headers": {"X-API-Key": K}}, {"extra": [{"password": K}]},
    {"base_url": f"https://user:{K}@host/v1"}, {"base_url": f"http://{K}:x-oauth-basic@host"},
    {"base_url": f"https://host/v1?api_key={K}"}, {"url": f"https://host/v1?a=1&token={K}"},
    {"url": f"https://host/v1?access_token={K}&b=2"}, {"url": f"https://host/v1?key={K}"},
    {"note": f"Bearer {K}"}, {"note": "sk-" + "A" * 24}, {"note": "hf_" + "b" * 30},
]
LEGIT_ENTRIES = [
    {"api_key_env": "OPENAI_API_KEY"}, {"base_url": "http://127.0.0.1:8000/v1"}, {"max_tokens": 512},
    {"mt_bench_max_new_tokens": 1024}, {"tokens_per_row": 400}, {"pad_token": "<pad>"}, {"backfill_key": "instruction"},
    {"api_key": None}, {"api_key": ""}, {"api_key": "???"}, {"token": False},
    {"base_url": "https://api.openai.com/v1"}, {"url": "https://host/v1?model=x&temperature=0"},
    {"repo": "ssh://git@github.com/x/y"}, {"path": "/data/tokens/password_list_names.txt"},
]


@pytest.mark.parametrize("entry", SECRET_ENTRIES, ids=lambda e: str(e)[:40].replace(K, "K"))
def test_credentials_are_found_and_redacted(entry):
    assert find_secrets(entry), entry
    assert K not in repr(redact(entry)) and "<redacted>" in repr(redact(entry))
    assert K not in repr(flatten(redact({"llm": entry})))  # what W&B gets


@pytest.mark.parametrize("entry", LEGIT_ENTRIES, ids=str)
def test_legitimate_entries_are_not_credentials(entry):
    assert find_secrets(entry) == [] and redact(entry) == entry


def test_override_strings_are_checked_by_name_and_value():
    assert override_secrets([f"+llm.api_key={K}"]) == ["+llm.api_key"]
    assert override_secrets([f"llm.base_url=https://u:{K}@h/v1", "x=1"]) == ["llm.base_url"]
    assert override_secrets([f"+llm.headers={{authorization: 'Bearer {K}'}}"]) == ["+llm.headers"]
    assert override_secrets([f"++llm.token=a,{K}"]) == ["++llm.token"]
    assert override_secrets(["llm.api_key_env=OPENAI_API_KEY", "llm.base_url=http://127.0.0.1:8000/v1",
                             "~llm.api_key", "llm.api_key=null", "dataset.limit=5,-1,6"]) == []
    assert redact_text(f"https://u:{K}@h/v1?token={K}&a=1") == "https://<redacted>@h/v1?token=<redacted>&a=1"


def test_wandb_gets_no_key_from_the_command_line(tmp_path, monkeypatch):
    """W&B records sys.argv in the run's metadata; the logger hands it a redacted copy (and restores the real one)."""
    pytest.importorskip("wandb")
    from tacos.tracking import WandbLogger

    argv = [sys.argv[0], f"+llm.openai_api_key={K}", f"llm.base_url=https://u:{K}@h/v1", "dataset.limit=4"]
    monkeypatch.setattr(sys, "argv", list(argv))
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = WandbLogger(mode="offline")
    logger.start(config=flatten(redact({"llm": {"openai_api_key": K, "model": "x"}})), run_dir=tmp_path, name="t")
    assert sys.argv == argv
    logger.finish(ok=True)
    assert list((tmp_path / "wandb").glob("offline-run-*/*.wandb"))
    assert leaks(tmp_path) == []


HYDRA_YAML = f"""hydra:
  overrides:
    task:
    - +llm.openai_api_key={K}
    - '+llm.headers.authorization=Bearer {K}'
    - llm.base_url=https://user:{K}@host/v1
    - llm.api_key_env=OPENAI_API_KEY
  job:
    override_dirname: +llm.api_key={K},+llm.x-api-key='{K}',llm.api_key_env=OPENAI_API_KEY,logger=none
    config:
      override_dirname:
        kv_sep: '='
llm:
  openai_api_key: {K}
  api_key_env: OPENAI_API_KEY
  headers:
    authorization: Bearer {K}
"""


def test_scrub_file_removes_keys_from_what_hydra_wrote(tmp_path):
    """The after-the-fact scrub (run.py, when the early refusal is bypassed) needs no list of the keys it removes:
    override lists, override_dirname and config entries, by name and by value."""
    path = tmp_path / "hydra.yaml"
    path.write_text(HYDRA_YAML)
    from tacos.config import scrub_file

    scrub_file(path)
    text = path.read_text()
    assert K not in text, text
    assert text.count("api_key_env=OPENAI_API_KEY") == 2 and "api_key_env: OPENAI_API_KEY" in text
    assert "kv_sep: '='" in text and "logger=none" in text
