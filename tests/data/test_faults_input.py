"""Project issue 12, item 10: bad input and a bad environment end with one clear message naming the file and row or
the setting, never a traceback: a lone surrogate in a pool row, a UTF-16/32 file, a full disk while a stage writes,
a corrupt or read-only call cache, wrong `client.*` settings."""
from __future__ import annotations

import errno
import json
import os
import sqlite3

import pytest
from hydra import compose, initialize_config_dir

import tacos.config  # noqa: F401  (registers the tacos_root resolver)
import tacos.records
from _faults_common import error_lines, llm_overrides, sample_rows, write_pool
from conftest import REPO, run_cli
from tacos.data.loaders import DataError, load_records
from tacos.llm.calling.cache import CACHE_FILENAME, CacheError, CallCache
from tacos.llm.calling.settings import ClientSettings
from tacos.pipeline import Pipeline
from tacos.records import DiskFull, write_jsonl
from tacos.rundir import publish_folder

UNPAIRED = json.loads('"broken \\ud800 text"')  # what Python's JSON reader makes of an unpaired escape


def load_run_py():
    """The application run.py wraps (tacos.app: the Hydra main, its job and its error lines)."""
    import tacos.app

    return tacos.app


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


# ---- a lone surrogate ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["jsonl", "json", "sharegpt"])
def test_lone_surrogate_names_file_row_and_field(tmp_path, layout):
    rows = sample_rows(5)
    if layout == "sharegpt":
        rows = [{"conversations": [{"from": "human", "value": r["instruction"]}, {"from": "gpt", "value": r["output"]}]}
                for r in rows]
        rows[3]["conversations"][1]["value"] = UNPAIRED
    else:
        rows[3]["output"] = UNPAIRED
    path = tmp_path / f"pool.{layout}"
    if layout == "json":
        path.write_text(json.dumps(rows), encoding="utf-8")  # ensure_ascii: the file holds the escape "\ud800"
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_records(path)
    assert str(path) in str(e.value) and "row 3" in str(e.value) and "lone UTF-16 surrogate" in str(e.value)
    assert "output" in str(e.value)


def test_lone_surrogate_through_run_py(tmp_path):
    rows = sample_rows(5)
    rows[2]["instruction"] = UNPAIRED
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = run_cli(["stages=[data]", "dataset=jsonl", f"dataset.path={pool}", "logger=none",
                   f"paths.output_dir={tmp_path / 'o'}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert out.returncode == 2
    (line,) = error_lines(out.stderr)
    assert "DataError" in line and str(pool) in line and "row 2" in line and "instruction" in line
    assert "Traceback" not in out.stderr and "UnicodeEncodeError" not in out.stderr
    assert not (tmp_path / "run" / "data" / "manifest.json").exists()


# ---- a path that is no readable file ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_directory_or_fifo_as_the_pool_is_one_line_naming_it(tmp_path, kind):
    """Project issue 21, item 9: not a traceback from hashing the input (IsADirectoryError), not a read that blocks on
    a FIFO forever: one line naming the path, exit 2, no manifest."""
    path = tmp_path / "pool_in"
    if kind == "directory":
        path.mkdir()
        write_pool(path / "pool.jsonl", sample_rows(3))
    else:
        os.mkfifo(path)
    out = run_cli(["stages=[data]", "dataset=jsonl", f"dataset.path={path}", "logger=none",
                   f"paths.output_dir={tmp_path / 'o'}", f"hydra.run.dir={tmp_path / 'run'}"], timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = error_lines(out.stderr)
    assert "DataError" in line and str(path) in line
    assert ("directory" if kind == "directory" else "FIFO") in line
    assert "Traceback" not in out.stderr and "IsADirectoryError" not in out.stderr
    assert not list((tmp_path / "run").glob("*/manifest.json"))


def test_an_unreadable_pool_is_one_line_naming_it(tmp_path, monkeypatch):
    """chmod 000 does not stop root (the tests may run as root): the open is made to fail as it would for a user."""
    import builtins

    import tacos.data.loaders as loaders
    from tacos.stages.data import STAGE

    pool = write_pool(tmp_path / "pool.jsonl", sample_rows(3))
    real_open = builtins.open

    def no_permission(file, *args, **kwargs):
        if str(file) == str(pool):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(loaders, "open", no_permission, raising=False)
    cfg = compose_cfg(["stages=[data]", "dataset=jsonl", f"dataset.path={pool}", "logger=none",
                       f"paths.output_dir={tmp_path / 'o'}"])
    for attempt in (lambda: STAGE.config_slice(cfg), lambda: load_records(pool)):
        with pytest.raises(DataError, match="cannot be read") as e:
            attempt()
        assert str(pool) in str(e.value) and "Permission denied" in str(e.value)
    with pytest.raises(DataError, match="cannot be read"):
        Pipeline(cfg, tmp_path / "run").run()
    assert not list((tmp_path / "run").glob("*/manifest.json"))


def test_writing_a_lone_surrogate_names_file_and_row(tmp_path):
    with pytest.raises(ValueError, match=r"out\.jsonl: row 1 \(0-based\) holds text that is not valid Unicode"):
        write_jsonl(tmp_path / "out.jsonl", [{"a": "fine"}, {"a": UNPAIRED}])


# ---- UTF-16 / UTF-32 -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding,bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"),
                                          ("utf-32-le", b"\xff\xfe\x00\x00"), ("utf-32-be", b"\x00\x00\xfe\xff")])
@pytest.mark.parametrize("layout", ["jsonl", "json"])
def test_utf16_and_utf32_with_a_byte_order_mark_load_like_utf8(tmp_path, encoding, bom, layout):
    rows = sample_rows(6)
    rows[1]["output"] = "naïve café — 日本語 😀"
    text = json.dumps(rows, ensure_ascii=False) if layout == "json" else \
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    utf8 = tmp_path / f"utf8.{layout}"
    utf8.write_text(text, encoding="utf-8")
    other = tmp_path / f"{encoding}.{layout}"
    other.write_bytes(bom + text.encode(encoding))
    assert load_records(other, name="pool") == load_records(utf8, name="pool")


def test_utf16_without_a_byte_order_mark_is_refused_clearly(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_bytes("".join(json.dumps(r) + "\n" for r in sample_rows(3)).encode("utf-16-le"))
    with pytest.raises(DataError, match=r"pool\.jsonl: holds NUL bytes .*UTF-16 .*without a byte-order mark"):
        load_records(path)


def test_utf16_with_a_broken_body_is_refused_clearly(tmp_path):
    path = tmp_path / "pool.json"
    path.write_bytes(b"\xff\xfe" + "[]".encode("utf-16-le") + b"\x00\xd8")  # an unpaired high surrogate at the end
    with pytest.raises(DataError, match=r"pool\.json: starts with a UTF-16 byte-order mark but is not valid UTF-16"):
        load_records(path)


# ---- a full disk -----------------------------------------------------------------------------------------------

def data_only_cfg(tmp_path):
    pool = write_pool(tmp_path / "pool.jsonl", sample_rows(5))
    return compose_cfg(["stages=[data]", "dataset=jsonl", f"dataset.path={pool}", "logger=none",
                        f"paths.output_dir={tmp_path / 'o'}", "share_outputs=false"])


class _FullFile:
    """A text file whose writes fail like a full disk's."""

    def __init__(self, real):
        self.real = real

    def write(self, _text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def test_disk_full_while_a_stage_writes_names_the_file(tmp_path, monkeypatch):
    cfg, run_dir = data_only_cfg(tmp_path), tmp_path / "run"

    def full_open(path, mode="r", *args, **kw):
        return _FullFile(open(path, mode, *args, **kw)) if "w" in mode else open(path, mode, *args, **kw)

    monkeypatch.setattr(tacos.records, "open", full_open, raising=False)
    with pytest.raises(DiskFull) as e:
        Pipeline(cfg, run_dir).run()
    records = run_dir / ".data.partial" / "records.jsonl"
    assert str(e.value) == f"disk full while writing {records}: free space or set paths.output_dir"
    assert e.value.errno == errno.ENOSPC and not (run_dir / "data" / "manifest.json").exists()

    run = load_run_py()
    with pytest.raises(run.JobFailed) as failed:
        run._run(cfg, run_dir, None, [])
    assert failed.value.message == f"disk full while writing {records}: free space or set paths.output_dir"
    assert run._expected(e.value)  # no traceback on the console


def test_disk_full_when_a_stage_is_published_names_the_path(tmp_path, monkeypatch):
    cfg, run_dir = data_only_cfg(tmp_path), tmp_path / "run"
    real_replace = os.replace

    def full_replace(src, dst, **kw):
        if str(dst).endswith(("manifest.json", "data")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src), None, str(dst))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "replace", full_replace)
    run = load_run_py()
    with pytest.raises(run.JobFailed) as failed:
        run._run(cfg, run_dir, None, [])
    assert failed.value.message.startswith(f"disk full while writing {run_dir}")
    assert failed.value.message.endswith(": free space or set paths.output_dir")
    assert not (run_dir / "data" / "manifest.json").exists()


def test_disk_full_in_the_fsync_of_a_publish_names_the_file(tmp_path, monkeypatch):
    partial = tmp_path / ".stage.partial"
    partial.mkdir()
    (partial / "rows.jsonl").write_text("{}\n")

    def full_fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_fsync)
    with pytest.raises(DiskFull, match=f"disk full while writing {partial / 'rows.jsonl'}"):
        publish_folder(partial, tmp_path / "stage")
    assert not (tmp_path / "stage").exists()


def test_a_full_disk_without_a_file_name_still_gets_the_message(tmp_path):
    run = load_run_py()
    try:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as inner:
            raise RuntimeError("plot failed") from inner
    except RuntimeError as e:
        assert run._message(e, tmp_path) == f"disk full while writing in {tmp_path}: free space or set paths.output_dir"
        assert run._expected(e)


# ---- the call cache --------------------------------------------------------------------------------------------

def test_corrupt_cache_names_the_file_and_the_fix(tmp_path):
    (tmp_path / CACHE_FILENAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheError) as e:
        CallCache(tmp_path)
    assert str(tmp_path / CACHE_FILENAME) in str(e.value) and "paths.cache_dir" in str(e.value)
    assert "damaged" in str(e.value)


def test_read_only_cache_names_the_file_and_the_fix(tmp_path, monkeypatch):
    with CallCache(tmp_path) as cache:  # an existing cache, then opened read-only (as on a read-only mount)
        cache.put("k", identity="m", prompt_hash="h", request={}, raw="r", parsed=None, status="invalid",
                  error="e", attempts=1, prompt_tokens=1, completion_tokens=1, logprobs=None)
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda path, **kw: real_connect(f"file:{path}?mode=ro", uri=True, **kw))
    with CallCache(tmp_path) as cache:
        assert cache.get("k")["raw"] == "r"  # what is cached can still be read
        with pytest.raises(CacheError) as e:  # the first new answer says what is wrong
            cache.put("k2", identity="m", prompt_hash="h", request={}, raw="r", parsed=None, status="invalid",
                      error="e", attempts=1, prompt_tokens=1, completion_tokens=1, logprobs=None)
    assert str(tmp_path / CACHE_FILENAME) in str(e.value) and "readonly" in str(e.value)
    assert "not writable" in str(e.value) and "paths.cache_dir" in str(e.value)


def test_corrupt_cache_through_run_py(tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / CACHE_FILENAME).write_bytes(b"\x00garbage" * 1000)
    pool = write_pool(tmp_path / "pool.jsonl", sample_rows(4))
    out = run_cli([*llm_overrides("http://127.0.0.1:9/v1", tmp_path, pool), "stages=[data,clean,tag]",
                   f"paths.cache_dir={cache_dir}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert out.returncode == 2
    (line,) = error_lines(out.stderr)
    assert "CacheError" in line and str(cache_dir / CACHE_FILENAME) in line and "paths.cache_dir" in line
    assert "Traceback" not in out.stderr


# ---- client settings -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("setting,value,expected", [
    ("max_retries", "abc", "client.max_retries must be an integer >= 0, got 'abc'"),
    ("timeout", -1, "client.timeout must be a number > 0, got -1"),
    ("max_concurrency", 0, "client.max_concurrency must be an integer >= 1 or null, got 0"),
    ("max_error_rate", 1.5, "client.max_error_rate must be a number >= 0 and <= 1, got 1.5"),
    ("retry_invalid", "yes", "client.retry_invalid must be true or false, got 'yes'"),
    ("max_retries", True, "client.max_retries must be an integer >= 0, got True"),
])
def test_client_settings_are_checked(setting, value, expected):
    with pytest.raises(ValueError) as e:
        ClientSettings.from_config({setting: value})
    assert str(e.value) == expected


def test_client_settings_defaults_match_the_config_and_unknown_keys_are_named():
    cfg = compose_cfg([])
    settings = ClientSettings.from_config(tacos.config.to_container(cfg.client))
    assert settings.max_retries == 5 and settings.max_concurrency is None and settings.max_error_rate == 0.0
    assert "max_error_rate" not in settings.client_kwargs()
    with pytest.raises(ValueError, match="unknown setting.*client.max_retry;"):
        ClientSettings.from_config({"max_retry": 3})


@pytest.mark.parametrize("override,setting", [("client.max_retries=abc", "client.max_retries"),
                                              ("client.timeout=-1", "client.timeout"),
                                              ("client.max_concurrency=0", "client.max_concurrency")])
def test_wrong_client_settings_stop_the_run_before_any_work(tmp_path, override, setting):
    pool = write_pool(tmp_path / "pool.jsonl", sample_rows(4))
    out = run_cli([*llm_overrides("http://127.0.0.1:9/v1", tmp_path, pool), "stages=[data,clean,tag]", override,
                   f"hydra.run.dir={tmp_path / 'run'}"])
    assert out.returncode == 2
    (line,) = error_lines(out.stderr)
    assert setting in line and "Traceback" not in out.stderr
    assert not (tmp_path / "run" / "data" / "manifest.json").exists()  # nothing ran
