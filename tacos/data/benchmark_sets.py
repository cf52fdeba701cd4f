"""The bundled evaluation sets: five pairwise test sets and MT-Bench (files under data/, see data/README.md)."""
from __future__ import annotations

from pathlib import Path

from tacos.data.loaders import DataError
from tacos.paths import BUNDLED_DATA_DIR
from tacos.records import TestQuestion, read_jsonl

TEST_SETS = ("koala", "sinstruct", "wizardlm", "vicuna", "lima")
EXPECTED_SIZES = {"koala": 180, "sinstruct": 252, "wizardlm": 218, "vicuna": 80, "lima": 300}
MT_BENCH = "mt_bench"

__all__ = ["TEST_SETS", "EXPECTED_SIZES", "MT_BENCH", "load_test_set", "load_mt_bench", "test_set_file",
           "mt_bench_file", "mt_bench_reference_answers", "mt_bench_judge_prompts", "question_file"]

_REBUILD = "rebuild data/ with `python scripts/build_sample_data.py`"


def test_set_file(name: str, data_dir: str | Path = BUNDLED_DATA_DIR) -> Path:
    if name not in TEST_SETS:
        raise DataError(f"unknown test set {name!r}; valid: {', '.join(TEST_SETS)} or {MT_BENCH}.")
    return Path(data_dir) / "test_sets" / f"{name}.jsonl"


def mt_bench_file(name: str, data_dir: str | Path = BUNDLED_DATA_DIR) -> Path:
    """question.jsonl, judge_prompts.jsonl or reference_answer/gpt-4.jsonl of the bundled MT-Bench."""
    return Path(data_dir) / MT_BENCH / name


def question_file(name: str, data_dir: str | Path = BUNDLED_DATA_DIR) -> Path:
    """The file load_test_set(name) reads: a test set's JSONL, or MT-Bench's question.jsonl."""
    return mt_bench_file("question.jsonl", data_dir) if name == MT_BENCH else test_set_file(name, data_dir)


def load_test_set(name: str, limit: int | None = None, data_dir: str | Path = BUNDLED_DATA_DIR) -> list[TestQuestion]:
    """One of TEST_SETS (or "mt_bench"), in file order; `limit` keeps the first rows."""
    if name == MT_BENCH:
        return load_mt_bench(limit, data_dir)
    return _head(read_jsonl(_existing(test_set_file(name, data_dir)), TestQuestion), limit, name)


def load_mt_bench(limit: int | None = None, data_dir: str | Path = BUNDLED_DATA_DIR) -> list[TestQuestion]:
    """The 80 MT-Bench questions, two user turns each; `instruction` is the first turn."""
    rows = read_jsonl(_existing(mt_bench_file("question.jsonl", data_dir)))
    questions = [TestQuestion(question_id=str(q["question_id"]), test_set=MT_BENCH, instruction=q["turns"][0],
                              category=q["category"], turns=list(q["turns"])) for q in rows]
    return _head(questions, limit, MT_BENCH)


def mt_bench_reference_answers(data_dir: str | Path = BUNDLED_DATA_DIR) -> dict[str, list[str]]:
    """question_id -> GPT-4 reference turns (math, reasoning and coding questions only)."""
    rows = read_jsonl(_existing(mt_bench_file("reference_answer/gpt-4.jsonl", data_dir)))
    return {str(r["question_id"]): list(r["choices"][0]["turns"]) for r in rows}


def mt_bench_judge_prompts(data_dir: str | Path = BUNDLED_DATA_DIR) -> dict[str, dict]:
    """Upstream FastChat judge prompts by name ("single-v1", "pair-v2", ...)."""
    return {row["name"]: row for row in read_jsonl(_existing(mt_bench_file("judge_prompts.jsonl", data_dir)))}


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing; {_REBUILD}.")
    return path


def _head(questions: list[TestQuestion], limit: int | None, name: str) -> list[TestQuestion]:
    if limit is not None and limit <= 0:
        raise DataError(f"test set {name!r}: limit must be a positive number of questions or None, got {limit}.")
    return questions if limit is None else questions[:limit]
