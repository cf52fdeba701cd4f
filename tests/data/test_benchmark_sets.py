"""Bundled test sets, MT-Bench, the inference prompt, and the reproducibility of data/."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

from tacos.paths import BUNDLED_DATA_DIR
from tacos.data import (
    EXPECTED_SIZES,
    TEST_SETS,
    DataError,
    alpaca_prompt,
    load_mt_bench,
    load_test_set,
    mt_bench_judge_prompts,
    mt_bench_reference_answers,
)

REPO = Path(__file__).resolve().parents[2]
REFERENCE = Path("/work/shared/data/reference")


def data_dir():
    return BUNDLED_DATA_DIR


def test_data_dir_is_repo_data():
    assert BUNDLED_DATA_DIR == REPO / "data"


@pytest.mark.parametrize("name", TEST_SETS)
def test_sizes_and_unique_ids(name):
    qs = load_test_set(name)
    assert len(qs) == EXPECTED_SIZES[name]
    assert len({q.question_id for q in qs}) == len(qs)
    assert all(q.test_set == name and q.instruction.strip() and q.turns == [] for q in qs)
    assert all(isinstance(q.question_id, str) for q in qs)


def test_original_ids_and_categories():
    assert load_test_set("koala")[0].question_id == "koala_0"
    assert load_test_set("sinstruct")[0].question_id == "user_oriented_task_0"
    w = load_test_set("wizardlm")[0]
    assert (w.question_id, w.category) == ("1", "Math")
    v = load_test_set("vicuna")[0]
    assert (v.question_id, v.category, v.instruction) == ("1", "generic", "How can I improve my time management skills?")
    assert [q.question_id for q in load_test_set("lima", limit=3)] == ["0", "1", "2"]


def test_sinstruct_inputs_match_source():
    qs = load_test_set("sinstruct")
    assert sum(bool(q.input) for q in qs) == 208
    assert all(q.category for q in qs)
    src = REFERENCE / "test_sets" / "sinstruct_test_set.jsonl"
    if src.exists():
        rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()]
        assert [q.input for q in qs] == [r["instances"][0]["input"] for r in rows]
        assert [q.instruction for q in qs] == [r["instruction"] for r in rows]


def test_other_sets_have_no_input():
    for name in ("koala", "wizardlm", "vicuna", "lima"):
        assert not any(q.input for q in load_test_set(name))


def test_unknown_test_set_lists_valid_names():
    with pytest.raises(DataError, match="unknown test set 'alpaca_eval'; valid: koala, sinstruct, wizardlm, vicuna, lima"):
        load_test_set("alpaca_eval")


def test_limit():
    assert len(load_test_set("koala", limit=5)) == 5
    with pytest.raises(DataError, match="positive"):
        load_test_set("koala", limit=0)


def test_mt_bench():
    qs = load_mt_bench()
    assert len(qs) == 80 and len({q.question_id for q in qs}) == 80
    assert all(len(q.turns) == 2 and q.instruction == q.turns[0] and q.test_set == "mt_bench" for q in qs)
    assert {q.category for q in qs} == {"writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem",
                                        "humanities"}
    assert qs[0].question_id == "81"
    assert [q.question_id for q in load_test_set("mt_bench", limit=2)] == ["81", "82"]
    refs = mt_bench_reference_answers()
    assert len(refs) == 30 and all(len(t) == 2 for t in refs.values()) and set(refs) <= {q.question_id for q in qs}
    prompts = mt_bench_judge_prompts()
    assert {"single-v1", "single-math-v1", "pair-v2"} <= set(prompts)
    assert "Aim to output a verdict" not in prompts["pair-v2"]["system_prompt"]  # upstream, not OpenCS's edit


def test_alpaca_prompt():
    assert alpaca_prompt("Say hi.") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nSay hi.\n\n### Response:")
    with_input = alpaca_prompt("Translate.", "Bonjour")
    assert with_input.startswith("Below is an instruction that describes a task, paired with an input")
    assert with_input.endswith("\n\n### Instruction:\nTranslate.\n\n### Input:\nBonjour\n\n### Response:")
    assert "\r" not in with_input


# ---------------------------------------------------------------- data/ is reproducible and documented


def _readme_sums() -> dict[str, str]:
    text = (data_dir() / "README.md").read_text(encoding="utf-8")
    return {path: digest for digest, path in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, re.M)}


def test_readme_sha256_matches_files():
    sums = _readme_sums()
    files = sorted(p.relative_to(data_dir()).as_posix() for p in data_dir().rglob("*")
                   if p.is_file() and p.suffix != ".md")
    assert sorted(sums) == files
    for rel, digest in sums.items():
        if not rel.endswith(".gz"):  # gzip bytes may differ across zlib builds; checked via the rebuild below
            assert hashlib.sha256((data_dir() / rel).read_bytes()).hexdigest() == digest, rel


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference data not available")
def test_rebuild_is_byte_identical(tmp_path):
    spec = importlib.util.spec_from_file_location("build_sample_data", REPO / "scripts" / "build_sample_data.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.main(["--reference", str(REFERENCE), "--out", str(tmp_path)])
    built = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    # reference_sets/ and judge_eval/ come from scripts/build_reference_ids.py and build_judge_eval_suites.py,
    # alpaca_eval/ from scripts/build_alpaca_eval_lc_data.py
    assert built == sorted(k for k in _readme_sums() if not k.startswith(("reference_sets/", "judge_eval/", "clean_eval/", "alpaca_eval/")))
    for rel in built:
        new, old = (tmp_path / rel).read_bytes(), (data_dir() / rel).read_bytes()
        if rel.endswith(".gz"):
            new, old = gzip.decompress(new), gzip.decompress(old)
        assert new == old, rel
