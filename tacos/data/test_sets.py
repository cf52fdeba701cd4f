"""The bundled evaluation sets: five pairwise test sets and MT-Bench (files under data/, see data/README.md)."""
from __future__ import annotations

from pathlib import Path

from tacos.data.loaders import DataError, data_dir
from tacos.records import TestQuestion, read_jsonl

TEST_SETS = ("koala", "sinstruct", "wizardlm", "vicuna", "lima")
EXPECTED_SIZES = {"koala": 180, "sinstruct": 252, "wizardlm": 218, "vicuna": 80, "lima": 300}
MT_BENCH = "mt_bench"

__all__ = ["TEST_SETS", "EXPECTED_SIZES", "MT_BENCH", "data_dir", "load_test_set", "load_mt_bench",
           "mt_bench_reference_answers", "mt_bench_judge_prompts", "alpaca_prompt"]

_REBUILD = "rebuild data/ with `python scripts/build_sample_data.py`"


def alpaca_prompt(instruction: str, input: str = "") -> str:
    """The inference prompt of the five test sets (method_spec.md §2.9) with "\\n" line ends, not "\\r\\n"."""
    if input:
        return ("Below is an instruction that describes a task, paired with an input that provides further "
                "context. Write a response that appropriately completes the request.\n\n"
                f"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:")
    return ("Below is an instruction that describes a task. Write a response that appropriately completes "
            f"the request.\n\n### Instruction:\n{instruction}\n\n### Response:")


def load_test_set(name: str, limit: int | None = None) -> list[TestQuestion]:
    """One of TEST_SETS (or "mt_bench"), in file order; `limit` keeps the first rows."""
    if name == MT_BENCH:
        return load_mt_bench(limit)
    if name not in TEST_SETS:
        raise DataError(f"unknown test set {name!r}; valid: {', '.join(TEST_SETS)} or {MT_BENCH}.")
    return _head(read_jsonl(_existing(data_dir() / "test_sets" / f"{name}.jsonl"), TestQuestion), limit, name)


def load_mt_bench(limit: int | None = None) -> list[TestQuestion]:
    """The 80 MT-Bench questions, two user turns each; `instruction` is the first turn."""
    rows = read_jsonl(_existing(data_dir() / "mt_bench" / "question.jsonl"))
    questions = [TestQuestion(question_id=str(q["question_id"]), test_set=MT_BENCH, instruction=q["turns"][0],
                              category=q["category"], turns=list(q["turns"])) for q in rows]
    return _head(questions, limit, MT_BENCH)


def mt_bench_reference_answers() -> dict[str, list[str]]:
    """question_id -> GPT-4 reference turns (math, reasoning and coding questions only)."""
    rows = read_jsonl(_existing(data_dir() / "mt_bench" / "reference_answer" / "gpt-4.jsonl"))
    return {str(r["question_id"]): list(r["choices"][0]["turns"]) for r in rows}


def mt_bench_judge_prompts() -> dict[str, dict]:
    """Upstream FastChat judge prompts by name ("single-v1", "pair-v2", ...)."""
    return {row["name"]: row for row in read_jsonl(_existing(data_dir() / "mt_bench" / "judge_prompts.jsonl"))}


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing; {_REBUILD}.")
    return path


def _head(questions: list[TestQuestion], limit: int | None, name: str) -> list[TestQuestion]:
    if limit is not None and limit <= 0:
        raise DataError(f"test set {name!r}: limit must be a positive number of questions or None, got {limit}.")
    return questions if limit is None else questions[:limit]
