"""Nothing stale, nothing silently damaged (issue 12, items 3, 8, 9, 11): what a stage's identity covers, files that
no longer match their manifest, one process per run dir, the stage store's lock, retries of failed calls on a re-run,
and the server's Retry-After."""
from __future__ import annotations

import fcntl
import json
import shutil
import time

import pytest
from conftest import REPO, run_cli, stub_overrides
from stub_server import StubServer
from tacos_responder import tacos_responder

from tacos.llm.calling.cache import CallCache
from tacos.llm.calling.client import LLMClient
from tacos.llm.calling.parsing import extract_json
from tacos.llm.calling.types import Endpoint, LLMRequest
from tacos.pipeline import code_version
from tacos.rundir import run_dir_lock
from tacos.stage import StageError
from tacos.stages import get_stage
from tacos.store import StageStore
from tacos.strategies.taggers import ReferenceTagFile

SELECT = "stages=[data,clean,tag,normalize,cluster,score,select]"


def _manifest(run_dir, stage):
    return json.loads((run_dir / stage / "manifest.json").read_text())


def test_a_pool_file_is_keyed_by_content_wherever_its_path_is_resolved(tmp_path, monkeypatch):
    """Before: a repository-relative or ~ path was keyed by its string, so an edited file reused old records."""
    from omegaconf import OmegaConf

    pool = REPO / "outputs" / f"_identity_test_{tmp_path.name}.jsonl"
    pool.parent.mkdir(exist_ok=True)
    try:
        pool.write_text(json.dumps({"instruction": "a", "input": "", "output": "b"}) + "\n")
        monkeypatch.chdir(tmp_path)  # the relative path resolves from the repository root, as the loader does
        cfg = OmegaConf.create({"dataset": {"path": str(pool.relative_to(REPO)), "name": "p"}, "seed": 0})
        first = get_stage("data").config_slice(cfg)
        pool.write_text(json.dumps({"instruction": "a", "input": "", "output": "changed"}) + "\n")
        assert get_stage("data").config_slice(cfg) != first
    finally:
        pool.unlink(missing_ok=True)


def test_a_reference_tag_file_is_keyed_by_content(tmp_path):
    f = tmp_path / "tags.jsonl"
    f.write_text('{"index": 0, "tags": ["x"]}\n')
    before = ReferenceTagFile(path=str(f)).identity()
    f.write_text('{"index": 0, "tags": ["y"]}\n')
    assert ReferenceTagFile(path=str(f)).identity() != before


def test_the_code_version_follows_the_source(tmp_path, monkeypatch):
    """Before: the store's only code input was tacos.__version__, unchanged since the first commit. Then: only the
    stage's module, its components' modules and tacos/method, so an edit to a module the stage reaches through them
    (tacos/llm/calling/parsing.py, via the tagger) left its outputs current."""
    from omegaconf import OmegaConf

    import tacos.code_identity

    cfg = OmegaConf.create({"normalize": {}, "tagger": {"_target_": "tacos.strategies.taggers.OpenTagger"}})
    before = {name: code_version(get_stage(name), cfg) for name in ("normalize", "tag")}
    source = tacos.code_identity.PACKAGE_ROOT
    for edited, stale in {"method/tag_normalization.py": {"normalize"}, "llm/calling/parsing.py": {"tag"}}.items():
        package = tmp_path / edited.replace("/", "_") / "tacos"
        shutil.copytree(source, package, ignore=shutil.ignore_patterns("__pycache__"))
        (package / edited).write_text((package / edited).read_text() + "\n# a fix\n")
        monkeypatch.setattr(tacos.code_identity, "PACKAGE_ROOT", package)
        after = {name: code_version(get_stage(name), cfg) for name in ("normalize", "tag")}
        assert {name for name in after if after[name] != before[name]} == stale, edited


def test_the_code_version_follows_nested_config_objects(tmp_path, monkeypatch):
    """A scorer's judge, its guard and their signals are built from nested `_target_`s: no import leads from the
    score stage to tacos/judges/signals.py, yet an edit there changes what the stage computes."""
    from hydra import compose, initialize_config_dir

    import tacos.code_identity

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config")
    before = code_version(get_stage("score"), cfg)
    package = tmp_path / "tacos"
    shutil.copytree(tacos.code_identity.PACKAGE_ROOT, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "judges" / "signals.py").write_text((package / "judges" / "signals.py").read_text() + "\n# a fix\n")
    monkeypatch.setattr(tacos.code_identity, "PACKAGE_ROOT", package)
    assert code_version(get_stage("score"), cfg) != before


def test_an_edit_the_stage_reaches_only_through_imports_is_not_stale(stub, tmp_path):
    """Run `tag`, then edit tacos/llm/calling/parsing.py (the tagger's, not the stage's, import) in a copy of the repo:
    a fresh run dir computes `tag` instead of copying the stored output, and the first run dir does not skip it.
    The stage `data` does not import it: it is still reused."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "tacos", repo / "tacos", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "run.py", repo / "run.py")
    for unchanged in ("conf", "data"):
        (repo / unchanged).symlink_to(REPO / unchanged)
    args = [*stub_overrides(stub, tmp_path), "stages=[data,clean,tag]", "dataset.limit=6"]
    first = tmp_path / "first"
    out = run_cli([*args, f"hydra.run.dir={first}"], repo=repo)
    assert out.returncode == 0, out.stderr[-3000:]
    old = _manifest(first, "tag")["code_version"]

    parsing = repo / "tacos" / "llm" / "calling" / "parsing.py"
    parsing.write_text(parsing.read_text() + "\n# a fix in how answers are parsed\n")
    fresh = tmp_path / "fresh"
    out = run_cli([*args, f"hydra.run.dir={fresh}"], repo=repo)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "reused_from" not in _manifest(fresh, "tag") and _manifest(fresh, "tag")["code_version"] != old
    assert _manifest(fresh, "data")["reused_from"]

    out = run_cli([*args, f"hydra.run.dir={first}"], repo=repo)
    assert out.returncode == 0, out.stderr[-3000:]
    assert _manifest(first, "tag")["code_version"] == _manifest(fresh, "tag")["code_version"]
    assert "stage tag: complete with identical config" not in out.stderr + out.stdout
    assert "stage data: complete with identical config" in out.stderr + out.stdout


def test_damaged_outputs_are_recomputed_not_reused(stub, tmp_path):
    run_dir = tmp_path / "run"
    args = [*stub_overrides(stub, tmp_path), SELECT, f"hydra.run.dir={run_dir}"]
    assert run_cli(args).returncode == 0
    first = _manifest(run_dir, "select")
    # A file edited after the stage finished: the next run recomputes the stage (it used to skip it).
    with open(run_dir / "select" / "selected.jsonl", "a") as f:
        f.write('{"id": "tampered"}\n')
    store = tmp_path / "outputs" / "store" / "select"
    stored = next(p for p in store.iterdir() if p.is_dir())
    assert run_cli(args).returncode == 0
    again = _manifest(run_dir, "select")
    assert again["output_hash"] == first["output_hash"] and "tampered" not in (run_dir / "select" /
                                                                               "selected.jsonl").read_text()
    # A damaged store entry is not copied into another run.
    (stored / "selected.jsonl").unlink()
    (stored / "selected.jsonl").write_text("damaged\n")
    run2 = tmp_path / "run2"
    assert run_cli([*stub_overrides(stub, tmp_path), SELECT, f"hydra.run.dir={run2}"]).returncode == 0
    assert "reused_from" not in _manifest(run2, "select")
    assert _manifest(run2, "select")["output_hash"] == first["output_hash"]


def test_one_process_per_run_dir(stub, tmp_path):
    run_dir = tmp_path / "run"
    with run_dir_lock(run_dir):
        out = run_cli([*stub_overrides(stub, tmp_path), "stages=[data]", f"hydra.run.dir={run_dir}"])
        assert out.returncode != 0 and "another TACOS process" in out.stderr
        dry = run_cli([*stub_overrides(stub, tmp_path), "dry_run=true", f"hydra.run.dir={run_dir}"])
        assert dry.returncode != 0 and "another TACOS process" in dry.stderr  # a dry run takes the lock too
    assert run_cli([*stub_overrides(stub, tmp_path), "stages=[data]", f"hydra.run.dir={run_dir}"]).returncode == 0


def test_the_store_lock_gives_up_waiting_and_survives_filesystems_without_locks(tmp_path, monkeypatch):
    store = StageStore(tmp_path / "store", lock_timeout_s=0.5)
    lock_file = tmp_path / "store" / "tag" / "k.lock"
    lock_file.parent.mkdir(parents=True)
    with open(lock_file, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        t0 = time.monotonic()
        with store.lock("tag", "k"):  # another job holds it: wait up to lock_timeout_s, then compute here
            waited = time.monotonic() - t0
    assert 0.4 < waited < 5

    def no_locks(*args):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with store.lock("tag", "k2"):
        pass  # no exception: a filesystem without flock only loses the waiting


def test_failed_calls_are_retried_on_a_rerun_even_when_allowed(tmp_path):
    """Before: with client.max_error_rate > 0 a stage with failed calls completed and was skipped for good."""
    with StubServer(faults=["500", None, "500"], responder=tacos_responder) as stub:
        run_dir = tmp_path / "run"
        args = [*stub_overrides(stub, tmp_path), "stages=[data,clean,tag]", "dataset.limit=6", "client.max_retries=0",
                "client.max_error_rate=0.5", "client.max_concurrency=1", f"hydra.run.dir={run_dir}"]
        assert run_cli(args).returncode == 0
        first = _manifest(run_dir, "tag")
        assert first["llm"]["errors"] > 0
        n = stub.count
        assert run_cli(args).returncode == 0
        second = _manifest(run_dir, "tag")
        assert stub.count - n == first["llm"]["errors"]  # only the failed calls are asked again
        assert second["llm"]["errors"] == 0 and second["counts"]["tagged"] == 6


def test_retry_after_is_honoured(tmp_path):
    with StubServer(faults=["429-retry-after"]) as stub:
        endpoint = Endpoint(base_url=stub.base_url, model="m", identity="m@test")
        client = LLMClient(endpoint, CallCache(tmp_path), progress=False, backoff_base=0.001, backoff_max=0.01)
        t0 = time.monotonic()
        [result] = client.run([LLMRequest(messages=(("user", "hi"),), prompt_hash="0" * 64)], extract_json)
        assert result.status == "ok" and time.monotonic() - t0 >= 0.9 and stub.count == 2


def test_stage_error_names_the_lock_holder(tmp_path):
    with run_dir_lock(tmp_path):
        with pytest.raises(StageError, match="another TACOS process"):
            with run_dir_lock(tmp_path):
                pass
