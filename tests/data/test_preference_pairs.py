"""Judge-evaluation data: the preference-pair / single-rating loaders, the dev/test split, the bundled suites."""
from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

from tacos.data.loaders import DataError
from tacos.data.preference_pairs import (
    PreferencePair,
    content_id,
    load_preference_pairs,
    load_single_ratings,
    split_of,
)

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "data" / "judge_eval"
REFERENCE = Path("/work/shared/data/reference")
PAIR_SUITES = ("mt_bench_pair", "swapped_response", "refined_balanced", "cross_instruction", "alpagasus_pair",
               "real_defects")
RATING_SUITES = ("mt_bench_single", "alpagasus_rating")

GOOD = {"instruction": "Say hi.", "output_1": "Hi!", "output_2": "Go away.", "preference": 1}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- loader ---------------------------------------------------------------------------------------------------

def test_loads_json_list_jsonl_and_gzip_alike(tmp_path):
    rows = [GOOD, {**GOOD, "instruction": "Say bye.", "input": "politely", "preference": 2, "id": "x",
                   "subset": "s", "annotator": "human"}]
    as_list = tmp_path / "p.json"
    as_list.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    as_gz = tmp_path / "p.jsonl.gz"
    as_gz.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    loaded = [load_preference_pairs(p) for p in (as_list, write_jsonl(tmp_path / "p.jsonl", rows), as_gz)]
    assert loaded[0] == loaded[1] == loaded[2]
    a, b = loaded[0]
    assert a == PreferencePair(content_id("p", "Say hi.", "", "Hi!", "Go away."), "Say hi.", "", "Hi!", "Go away.",
                               1.0, "all")
    assert a.id.startswith("p") and len(a.id) == 17
    assert (b.id, b.input, b.preference, b.subset, b.extra) == ("x", "politely", 2.0, "s", {"annotator": "human"})


def test_default_id_is_a_stable_content_hash(tmp_path):
    first = load_preference_pairs(write_jsonl(tmp_path / "a.jsonl", [GOOD]))[0].id
    again = load_preference_pairs(write_jsonl(tmp_path / "b.jsonl", [{"x": 1, **GOOD, "preference": 2}]))[0].id
    other = load_preference_pairs(write_jsonl(tmp_path / "c.jsonl", [{**GOOD, "output_2": "Bye."}]))[0].id
    assert first == again != other


@pytest.mark.parametrize("raw, expected", [(0, 1.5), (1.5, 1.5), (1, 1.0), (2, 2.0), (1.0, 1.0), (2.0, 2.0)])
def test_preference_values_and_tie_normalisation(tmp_path, raw, expected):
    (pair,) = load_preference_pairs(write_jsonl(tmp_path / "p.jsonl", [{**GOOD, "preference": raw}]))
    assert pair.preference == expected and isinstance(pair.preference, float)


def test_identical_outputs_may_tie(tmp_path):
    (pair,) = load_preference_pairs(write_jsonl(tmp_path / "p.jsonl", [{**GOOD, "output_2": "Hi!", "preference": 0}]))
    assert pair.preference == 1.5


BAD_PAIRS = {
    "missing instruction": ({k: v for k, v in GOOD.items() if k != "instruction"}, "missing 'instruction'"),
    "empty instruction": ({**GOOD, "instruction": "  "}, "'instruction' is empty"),
    "missing output_2": ({k: v for k, v in GOOD.items() if k != "output_2"}, "missing 'output_2'"),
    "output not a string": ({**GOOD, "output_1": 3}, "'output_1' must be a string"),
    "input not a string": ({**GOOD, "input": ["x"]}, "'input' must be a string"),
    "missing preference": ({k: v for k, v in GOOD.items() if k != "preference"}, "'preference' must be a finite"),
    "preference 3": ({**GOOD, "preference": 3}, "'preference' must be 1 or 2"),
    "preference 1.3": ({**GOOD, "preference": 1.3}, "'preference' must be 1 or 2"),
    "preference as text": ({**GOOD, "preference": "1"}, "'preference' must be a finite number"),
    "preference bool": ({**GOOD, "preference": True}, "'preference' must be a finite number"),
    "identical outputs, decisive": ({**GOOD, "output_2": "Hi!"}, "identical but 'preference' is 1"),
    "empty id": ({**GOOD, "id": ""}, "'id' is empty"),
    "subset not a string": ({**GOOD, "subset": 1}, "'subset' must be a string"),
    "duplicate content": (GOOD, "duplicate id"),
    "not an object": ([1, 2], "a row must be a JSON object"),
}


@pytest.mark.parametrize("case", BAD_PAIRS)
def test_rejected_pairs_name_file_and_row(tmp_path, case):
    row, problem = BAD_PAIRS[case]
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, row])
    with pytest.raises(DataError) as e:
        load_preference_pairs(path)
    assert str(path) in str(e.value) and "row 1 (0-based)" in str(e.value) and problem in str(e.value)


def test_duplicate_explicit_id_names_both_rows(tmp_path):
    path = write_jsonl(tmp_path / "bad.json", [{**GOOD, "id": "a"}, {**GOOD, "id": "a", "output_2": "No."}])
    with pytest.raises(DataError, match=r"row 1 \(0-based\).*duplicate id 'a'.*row 0 \(0-based\)"):
        load_preference_pairs(path)


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_preference_pairs(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty.jsonl: file is empty"):
        load_preference_pairs(tmp_path / "empty.jsonl")
    (tmp_path / "broken.jsonl").write_text(json.dumps(GOOD) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken.jsonl, row 1 \(0-based\), line 2: invalid JSON"):
        load_preference_pairs(tmp_path / "broken.jsonl")


def test_single_ratings(tmp_path):
    rows = [{"id": "a", "instruction": "Q?", "output": "A.", "rating": 7, "subset": "math", "turn": 1},
            {"question": "Q2?", "output": "B.", "rating": 9.5}]
    a, b = load_single_ratings(write_jsonl(tmp_path / "r.jsonl", rows))
    assert (a.id, a.rating, a.subset, a.extra) == ("a", 7.0, "math", {"turn": 1})
    assert (b.instruction, b.rating, b.subset) == ("Q2?", 9.5, "all") and b.id == content_id("s", "Q2?", "", "B.")


@pytest.mark.parametrize("row, problem", [
    ({"instruction": "Q?", "output": "A.", "rating": -1}, "between 0 and 10"),
    ({"instruction": "Q?", "output": "A.", "rating": 11}, "between 0 and 10"),
    ({"instruction": "Q?", "output": "A.", "rating": "7"}, "must be a finite number"),
    ({"instruction": "Q?", "output": "A.", "rating": float("nan")}, "must be a finite number"),
    ({"output": "A.", "rating": 5}, "missing 'instruction'"),
    ({"instruction": "Q?", "rating": 5}, "missing 'output'"),
    ({"id": "a", "instruction": "Q3?", "output": "C.", "rating": 5}, "duplicate id 'a'"),
])
def test_rejected_ratings_name_file_and_row(tmp_path, row, problem):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "instruction": "Q?", "output": "A.", "rating": 5}, row])
    with pytest.raises(DataError) as e:
        load_single_ratings(path)
    assert str(path) in str(e.value) and "row 1 (0-based)" in str(e.value) and problem in str(e.value)


# --- split ------------------------------------------------------------------------------------------------------

def test_split_is_a_fixed_function_of_the_id():
    # Pinned: a change here would move rows between dev and test of every suite.
    # sha256("id-7") starts c712f31d (>= 0.5 of 2**64: dev), sha256("id-8") starts 460e44dd (test).
    assert [split_of(f"id-{k}") for k in (6, 7, 8, 9)] == ["dev", "dev", "test", "test"]
    assert split_of("mtb-pair-81-t1") == "dev" and split_of("mtb-pair-143-t2") == "test"
    assert {split_of(f"id-{k}", 0.0) for k in range(50)} == {"dev"}
    assert {split_of(f"id-{k}", 1.0) for k in range(50)} == {"test"}
    with pytest.raises(ValueError):
        split_of("x", 1.5)


def test_split_is_roughly_balanced():
    ids = [f"row-{k}" for k in range(4000)]
    assert 0.46 < sum(split_of(i) == "test" for i in ids) / len(ids) < 0.54
    assert 0.16 < sum(split_of(i, 0.2) == "test" for i in ids) / len(ids) < 0.24


# --- bundled suites ---------------------------------------------------------------------------------------------

def load_suite(name: str, split: str) -> list:
    path = SUITES / f"{name}_{split}.jsonl"
    return load_single_ratings(path) if name in RATING_SUITES else load_preference_pairs(path)


@pytest.mark.parametrize("name", [*PAIR_SUITES, *RATING_SUITES])
def test_bundled_suites_load_and_dev_test_are_disjoint(name):
    """(The halves follow the source rows: tests/data/test_suite_splits.py.)"""
    dev, test = load_suite(name, "dev"), load_suite(name, "test")
    assert dev and test
    assert not {r.id for r in dev} & {r.id for r in test}
    if name.startswith("mt_bench"):  # a question's turn is one row: it cannot straddle the split
        keys = [(r.extra["question_id"], r.extra["turn"]) for r in dev + test]
        assert len(keys) == len(set(keys))


@pytest.mark.parametrize("name", PAIR_SUITES)
def test_bundled_pairs_are_decisive(name):
    for split in ("dev", "test"):
        prefs = [p.preference for p in load_suite(name, split)]
        assert set(prefs) <= {1.0, 2.0}
        if name != "mt_bench_pair":  # the correct answer's position is balanced within each split
            assert abs(prefs.count(1.0) - prefs.count(2.0)) <= 1


def test_bundled_sizes():
    assert sum(len(load_suite("swapped_response", s)) for s in ("dev", "test")) == 100
    assert sum(len(load_suite("mt_bench_pair", s)) for s in ("dev", "test")) == 75
    assert sum(len(load_suite("mt_bench_single", s)) for s in ("dev", "test")) == 158
    assert sum(len(load_suite("refined_balanced", s)) for s in ("dev", "test")) == 254
    assert sum(len(load_suite("cross_instruction", s)) for s in ("dev", "test")) == 150
    assert [len(load_suite("alpagasus_pair", s)) for s in ("dev", "test")] == [191, 200]
    for split in ("dev", "test"):
        ratings = [r.rating for r in load_suite("alpagasus_rating", split)]
        assert set(ratings) == {0.0, 1.0} and ratings.count(1.0) >= 100  # natural rate of positives (~10 %)
    assert sum(p.stat().st_size for p in SUITES.rglob("*") if p.is_file()) < 4_500_000  # 0.9 MB of it: external/


def test_the_length_balanced_suite_is_balanced():
    for split in ("dev", "test"):
        pairs = load_suite("refined_balanced", split)
        refined_longer = [p.extra["refined_longer"] for p in pairs]
        assert refined_longer.count(True) == refined_longer.count(False)  # always-longer scores exactly 0.5
        assert all(p.extra["label_assumed"] is True for p in pairs)  # "the refinement is better" is assumed


def test_alpagasus_pairs_are_length_matched_and_from_one_cluster():
    for split in ("dev", "test"):
        for p in load_suite("alpagasus_pair", split):
            short, long = sorted((len(p.output_1.strip()), len(p.output_2.strip())))
            assert long / short <= 1.25 and p.instruction_2 is not None and isinstance(p.extra["cluster"], int)


@pytest.mark.slow  # embeds ~6,000 texts with MiniLM
def test_rebuild_is_byte_identical(tmp_path, capsys):
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} (the OpenCS reference files) is absent in this checkout")
    script = REPO / "scripts" / "build_judge_eval_suites.py"
    spec = importlib.util.spec_from_file_location("build_judge_eval_suites", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--reference", str(REFERENCE), "--out", str(tmp_path)])
    built = sorted(p.name for p in tmp_path.iterdir())
    assert built == sorted(p.name for p in SUITES.glob("*.jsonl"))
    for name in built:
        assert (tmp_path / name).read_bytes() == (SUITES / name).read_bytes(), name
    assert "alpagasus_pair_dev.jsonl: 191 rows" in capsys.readouterr().out
