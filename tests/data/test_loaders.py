"""Pool loaders: every format, every bad-input case, deterministic subsets, the bundled sample pool."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tacos.data import (
    DataError,
    PoolSource,
    load_hf_records,
    load_records,
    sample_pool_path,
    unwrap_alpaca_one_line,
    wrap_alpaca_one_line,
)
from tacos.records import record_id

REPO = Path(__file__).resolve().parents[2]


def write_json(path: Path, rows) -> Path:
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ALPACA = [{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
          {"instruction": "Name a colour.", "input": "", "output": "Blue."}]


def sharegpt(human: str, gpt: str) -> dict:
    return {"id": "", "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]}


# ---------------------------------------------------------------- formats


def test_alpaca_json_array(tmp_path):
    recs = load_records(write_json(tmp_path / "a.json", ALPACA), name="pool")
    assert [(r.index, r.instruction, r.input, r.output, r.source) for r in recs] == [
        (0, "Add the numbers.", "2 and 3", "5", "pool"), (1, "Name a colour.", "", "Blue.", "pool")]
    assert recs[0].id == record_id("Add the numbers.", "2 and 3", "5")
    assert recs[0].conversations is None


def test_jsonl_gz_and_default_source(tmp_path):
    path = tmp_path / "pool.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in ALPACA).encode()))
    recs = load_records(path)
    assert [r.output for r in recs] == ["5", "Blue."] and recs[0].source == "pool"


def test_evol_instruct_has_no_input(tmp_path):
    rows = [{"instruction": "Explain X.", "output": "X is..."}]
    for fmt in ("auto", "evol_instruct", "alpaca"):
        (rec,) = load_records(write_jsonl(tmp_path / "e.jsonl", rows), fmt)
        assert (rec.instruction, rec.input, rec.output) == ("Explain X.", "", "X is...")


def test_text_is_kept_byte_for_byte(tmp_path):
    rows = [{"instruction": "  Keep\r\nCRLF \u2028 and spaces ", "input": "\tx ", "output": " é 中文\r\n"}]
    (rec,) = load_records(write_jsonl(tmp_path / "t.jsonl", rows))
    assert (rec.instruction, rec.input, rec.output) == (rows[0]["instruction"], "\tx ", " é 中文\r\n")


def test_jsonl_blank_lines_and_crlf_line_ends(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_bytes(b"\n" + json.dumps(ALPACA[0]).encode() + b"\r\n\r\n" + json.dumps(ALPACA[1]).encode() + b"\r\n")
    recs = load_records(path)
    assert [r.index for r in recs] == [0, 1] and recs[1].output == "Blue."


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(ALPACA).encode())
    assert len(load_records(path)) == 2


def test_sharegpt_unwraps_alpaca_one_line_prompt(tmp_path):
    rows = [sharegpt(wrap_alpaca_one_line("Classify these.", "Oak, copper"), "Plant, mineral"),
            sharegpt(wrap_alpaca_one_line("Write a haiku."), "Leaves fall...")]
    recs = load_records(write_json(tmp_path / "s.json", rows))
    assert [(r.instruction, r.input) for r in recs] == [("Classify these.", "Oak, copper"), ("Write a haiku.", "")]
    raw = load_records(tmp_path / "s.json", unwrap_alpaca_prompt=False)
    assert raw[0].instruction == rows[0]["conversations"][0]["value"] and raw[0].input == ""


def test_sharegpt_role_content_variants_and_multi_turn(tmp_path):
    rows = [{"conversations": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                               {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"},
                               {"role": "assistant", "content": "Bye!"}]},
            {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}]
    recs = load_records(write_jsonl(tmp_path / "m.jsonl", rows))
    assert (recs[0].instruction, recs[0].output) == ("Hi", "Hello")
    assert recs[0].conversations == (("human", "Hi"), ("gpt", "Hello"), ("human", "Bye"), ("gpt", "Bye!"))
    assert (recs[1].instruction, recs[1].output, recs[1].conversations) == ("Q", "A", None)


@pytest.mark.parametrize("instruction,input", [
    ("Write a poem.", ""), ("Summarise the text.", "Some text\nwith lines."), (" spaced ", "  x"),
    ("Multi\nline instruction", "input ### Input: inside")])
def test_wrap_unwrap_round_trip(instruction, input):
    assert unwrap_alpaca_one_line(wrap_alpaca_one_line(instruction, input)) == (instruction, input)


def test_unwrap_leaves_other_text_alone():
    assert unwrap_alpaca_one_line("Just a question?") is None
    # input variant without its separator: not guessed
    assert unwrap_alpaca_one_line(wrap_alpaca_one_line("a", "b").replace(" ### Input: ", " ")) is None


# ---------------------------------------------------------------- limit / seed / duplicates


def test_limit_is_seeded_nested_and_in_file_order(tmp_path):
    rows = [{"instruction": f"Task {i}", "output": f"Answer {i}"} for i in range(200)]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    a = load_records(path, limit=50, seed=1)
    assert [r.id for r in a] == [r.id for r in load_records(path, limit=50, seed=1)]
    assert [r.id for r in a] != [r.id for r in load_records(path, limit=50, seed=2)]
    assert [r.index for r in a] == sorted(r.index for r in a) and len(a) == 50
    assert {r.id for r in load_records(path, limit=20, seed=1)} <= {r.id for r in a}
    assert len(load_records(path, limit=10_000)) == 200


def test_duplicates_error_or_drop(tmp_path):
    path = write_json(tmp_path / "d.json", [ALPACA[0], ALPACA[1], ALPACA[0]])
    with pytest.raises(DataError, match=r"rows 0 and 2 \(0-based\) are identical.*on_duplicate=drop"):
        load_records(path)
    recs = load_records(path, on_duplicate="drop")
    assert [r.index for r in recs] == [0, 1]


# ---------------------------------------------------------------- bad input -> DataError naming file and row


def bad(path: Path, match: str, **kw):
    with pytest.raises(DataError, match=match) as e:
        load_records(path, **kw)
    return str(e.value)


def test_missing_file(tmp_path):
    msg = bad(tmp_path / "nope.json", "file not found")
    assert str(tmp_path / "nope.json") in msg


def test_directory(tmp_path):
    bad(tmp_path, "is a directory")


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    assert str(path) in bad(path, "file is empty")


def test_empty_array(tmp_path):
    bad(write_json(tmp_path / "e.json", []), "no rows")


def test_invalid_jsonl_names_row_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(ALPACA[0]) + "\n\n" + '{"instruction": "a", "output": \n', encoding="utf-8")
    msg = bad(path, r"row 1 \(0-based\), line 3: invalid JSON")
    assert str(path) in msg


def test_invalid_json_array_names_line_and_column(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('[\n {"instruction": "a", "output": "b"},\n {"instruction": "c" "output": "d"}\n]', encoding="utf-8")
    bad(path, r"invalid JSON at line 3 column 22: Expecting")


def test_pretty_printed_object_hint(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text(json.dumps({"data": ALPACA}, indent=2), encoding="utf-8")
    bad(path, "pretty-printed JSON object")


@pytest.mark.parametrize("row,fmt,match", [
    ({"prompt": "a", "response": "b"}, "auto", r"row 0 \(0-based\).*cannot detect the format"),
    ({"instruction": "a"}, "alpaca", r"row 0 \(0-based\).*missing 'output'"),
    ({"instruction": "a", "output": "b"}, "sharegpt", r"missing 'conversations'"),
    ({"instruction": ["a"], "output": "b"}, "auto", r"'instruction' must be a string, got list"),
    ({"instruction": "a", "input": 3, "output": "b"}, "auto", r"'input' must be a string, got int"),
    ({"conversations": "hi"}, "auto", r"non-empty list of turns"),
    ({"conversations": [{"from": "human", "value": 1}]}, "auto", r"turn 0 \(0-based\) must be an object"),
    ({"conversations": [{"from": "robot", "value": "x"}]}, "auto", r"unknown speaker 'robot'"),
    ({"conversations": [{"from": "human", "value": "x"}]}, "auto", r"no gpt/assistant turn"),
    ({"conversations": [{"from": "gpt", "value": "x"}]}, "auto", r"no human/user turn"),
])
def test_wrong_schema(tmp_path, row, fmt, match):
    bad(write_jsonl(tmp_path / "s.jsonl", [row]), match, format=fmt)


def test_wrong_schema_at_later_row(tmp_path):
    bad(write_jsonl(tmp_path / "s.jsonl", [ALPACA[0], ALPACA[1], {"instruction": "x"}]), r"row 2 \(0-based\), line 3: missing")
    bad(write_json(tmp_path / "s.json", [ALPACA[0], ["not", "an", "object"]]), r"row 1 \(0-based\): expected a JSON object")


def test_null_input_means_no_input(tmp_path):
    (rec,) = load_records(write_jsonl(tmp_path / "n.jsonl", [{"instruction": "a", "input": None, "output": "b"}]))
    assert rec.input == ""


@pytest.mark.parametrize("field,value", [("instruction", ""), ("instruction", " \n\t"), ("output", ""), ("output", "  ")])
def test_empty_instruction_or_output(tmp_path, field, value):
    rows = [ALPACA[0], {**ALPACA[1], field: value}]
    bad(write_json(tmp_path / "e.json", rows), rf"row 1 \(0-based\): {field} is empty or whitespace-only")


def test_empty_instruction_after_unwrapping(tmp_path):
    bad(write_json(tmp_path / "u.json", [sharegpt(wrap_alpaca_one_line(" "), "x")]), "instruction is empty")


def test_non_utf8_names_offset_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(ALPACA[0]).encode() + b'\n{"instruction": "caf\xe9", "output": "x"}\n')
    msg = bad(path, r"not valid UTF-8 at byte offset \d+ \(line 2, byte 21 of that line\)")
    assert "iconv" in msg and str(path) in msg


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"instruction": "a", "output": "b"}\n')[:-6])
    bad(path, "corrupt gzip")


def test_huge_row(tmp_path):
    rows = [ALPACA[0], {"instruction": "big", "output": "x" * 2000}]
    bad(write_jsonl(tmp_path / "h.jsonl", rows), r"row 1 \(0-based\), line 2: row is 2,0\d\d bytes.*max_row_bytes=1,000",
        max_row_bytes=1000)
    bad(write_json(tmp_path / "h.json", rows), r"row 1 \(0-based\): row is", max_row_bytes=1000)
    assert len(load_records(tmp_path / "h.json", max_row_bytes=5000)) == 2


@pytest.mark.parametrize("limit", [0, -3])
def test_bad_limit(tmp_path, limit):
    bad(write_json(tmp_path / "a.json", ALPACA), "dataset.limit must be a positive", limit=limit)


def test_unknown_format_and_on_duplicate(tmp_path):
    path = write_json(tmp_path / "a.json", ALPACA)
    bad(path, "unknown dataset.format 'csv'; valid: auto, alpaca, evol_instruct, sharegpt", format="csv")
    bad(path, "on_duplicate must be one of error, drop", on_duplicate="keep")


def test_pool_source_path_and_hf_both_set():
    with pytest.raises(DataError, match="not both"):
        PoolSource(path="x.json", hf_name="org/x").load()


# ---------------------------------------------------------------- Hugging Face


def test_hf_without_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    with pytest.raises(DataError, match=r"'org/some-set'.*pip install datasets"):
        load_hf_records("org/some-set")


def test_hf_offline_missing_dataset_fails_fast(tmp_path):
    pytest.importorskip("datasets")
    # A fresh interpreter: `datasets` reads the offline switches when it is imported.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code = ("from tacos.data import PoolSource, DataError\n"
            "try:\n    PoolSource(hf_name='tacos-made-up-org/no-such-dataset-xyz').load()\n"
            "except DataError as e:\n    print('DATAERROR', e)\n")
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert "DATAERROR" in out.stdout and "no-such-dataset-xyz" in out.stdout and "Offline mode" in out.stdout, out
    assert time.monotonic() - start < 30


# ---------------------------------------------------------------- bundled sample pool


def test_sample_pool_loads_with_unique_ids():
    recs = PoolSource().load()
    assert len(recs) == 3804 and len({r.id for r in recs}) == len(recs)
    assert [r.index for r in recs] == list(range(len(recs)))
    assert sum(bool(r.input) for r in recs) == 758
    assert all(r.instruction.strip() and r.output.strip() for r in recs)
    assert not any(r.instruction.startswith("Below is an instruction") for r in recs)


def test_sample_pool_subsets_are_deterministic():
    a = PoolSource(limit=300).load(seed=0)
    assert [r.id for r in a] == [r.id for r in PoolSource(limit=300).load(seed=0)]
    assert {r.id for r in a} != {r.id for r in PoolSource(limit=300).load(seed=1)}


def test_tiny_sample_is_the_pool_prefix():
    tiny = load_records(REPO / "data" / "sample" / "alpaca_tiny.json")
    assert len(tiny) == 40
    assert [r.id for r in tiny] == [r.id for r in load_records(sample_pool_path(), limit=None)[:40]]


def test_relative_path_resolves_from_repo_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(load_records("data/sample/alpaca_tiny.json")) == 40
