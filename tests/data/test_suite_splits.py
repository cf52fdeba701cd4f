"""Every bundled judge-evaluation file splits by its source row (tacos.data.splits.suite_half): no instruction is in
two halves, within one suite or across suites, and no suite row uses an instruction of the 5 test sets or MT-Bench
(the MT-Bench suites aside, which are MT-Bench). Fast: reads the committed files only."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tacos.data.splits import _normalized, source_split, suite_half

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "data" / "judge_eval"
FILES = sorted(SUITES.glob("*_dev.jsonl")) + sorted(SUITES.glob("*_test.jsonl"))


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sources(row: dict) -> list[tuple[str, str]]:
    """The (instruction, input) source rows a suite row shows; MT-Bench rows: the turn-1 question."""
    if "question_id" in row:
        return [(row["instruction"].split("\n\n### Assistant:")[0].removeprefix("### User:\n"), "")]
    out = [(row["instruction"], row.get("input", ""))]
    if "instruction_2" in row:
        out.append((row["instruction_2"], row.get("input_2", "")))
    return out


def test_there_are_suites():
    names = {p.name for p in FILES}
    for suite in ("alpagasus_pair", "alpagasus_rating", "real_defects", "real_defects_pool", "swapped_response",
                  "cross_instruction", "refined_balanced", "mt_bench_pair", "mt_bench_single"):
        assert {f"{suite}_dev.jsonl", f"{suite}_test.jsonl"} <= names, suite


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_row_is_in_its_source_rows_half(path):
    half = path.stem.rsplit("_", 1)[1]
    for row in rows(path):
        for instruction, input in sources(row):
            assert suite_half(instruction, input) == half, (path.name, instruction[:80])


def test_no_instruction_in_two_halves_across_suites():
    seen: dict[str, tuple[str, str]] = {}
    for path in FILES:
        half = path.stem.rsplit("_", 1)[1]
        for row in rows(path):
            for instruction, input in sources(row):
                key = _normalized(instruction) + "\x1f" + _normalized(input)
                assert seen.setdefault(key, (half, path.name))[0] == half, (path.name, seen[key], instruction[:80])


def test_no_test_set_or_mt_bench_instruction_outside_the_mt_bench_suites():
    banned = set()
    for path in sorted((REPO / "data" / "test_sets").glob("*.jsonl")):
        banned |= {_normalized(r["instruction"]) for r in rows(path)}
    for q in rows(REPO / "data" / "mt_bench" / "question.jsonl"):
        banned |= {_normalized(t) for t in q["turns"]}
    for path in FILES:
        if not path.name.startswith("mt_bench"):
            for row in rows(path):
                assert not {_normalized(i) for i, _ in sources(row)} & banned, path.name


def test_alpagasus_suites_hold_no_train_row():
    """The train part is reserved for training a head: it is in no suite."""
    for path in SUITES.glob("alpagasus_*.jsonl"):
        for row in rows(path):
            assert all(source_split(i, x) != "train" for i, x in sources(row)), path.name
