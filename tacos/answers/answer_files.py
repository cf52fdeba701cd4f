"""Reading FastChat answer files for the judge: our model's (from the infer stage) and placeholders for forecasts.

An answer file is FastChat's model_answer/<bench>/<model_id>.jsonl; the model id is the file name, as in FastChat.
The baselines' files are found by tacos.benchmarks.baselines. Problems are ValueErrors that say what to do (the stage
reports them; nothing here depends on the stage machinery).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tacos.records import TestQuestion, read_jsonl


@dataclass(frozen=True)
class Answers:
    """One model's FastChat answer file: model id (the file name, as FastChat) and question_id -> turns."""

    model_id: str
    path: Path
    turns: dict[str, list[str]]


def read_answers(path: Path) -> Answers:
    turns: dict[str, list[str]] = {}
    for n, row in enumerate(read_jsonl(path), 1):
        try:
            answer = [str(t) for t in row["choices"][0]["turns"]]
            turns[str(row["question_id"])] = answer
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"{path}: line {n} is not a FastChat answer row "
                             f"{{question_id, choices: [{{turns: [...]}}]}}") from None
    return Answers(model_id=path.stem, path=path, turns=turns)


def our_answer_file(infer_dir: Path, model_id: str | None, bench: str) -> Path | None:
    """Our answers to `bench` in an infer stage folder: `model_id`'s file (the stage passes judging.model_id, else the
    fine-tuned model its infer manifest names, not the base model it may also answer), else the only file there."""
    folder = infer_dir / "model_answer" / bench
    if model_id:
        path = folder / f"{model_id}.jsonl"
        return path if path.is_file() else None
    files = sorted(folder.glob("*.jsonl"))
    if len(files) > 1:
        raise ValueError(f"{folder} holds answers of several models ({', '.join(f.stem for f in files)}); "
                         f"choose ours with judging.model_id=NAME")
    return files[0] if files else None


def our_answers(infer_dir: Path, model_id: str | None, benches: list[str]) -> dict[str, Answers]:
    """bench -> our answers; every bench must have them (the message says how to get them)."""
    found = {b: p for b in benches if (p := our_answer_file(infer_dir, model_id, b)) is not None}
    missing = [b for b in benches if b not in found]
    if missing:
        which = f"{model_id}.jsonl" if model_id else "*.jsonl"
        raise ValueError(f"no answers of our model for {missing} in {infer_dir / 'model_answer'}/<bench>/{which}. "
                         f"Run infer on them (it answers what the run's `benchmarks` ask), or judge fewer "
                         f"(benchmarks.pairwise.test_sets=[...], or another preset: benchmarks=mt_bench / pairwise).")
    return {b: read_answers(p) for b, p in found.items()}


def placeholder_answers(questions: list[TestQuestion], who: str = "ours") -> Answers:
    """Answers for a forecast before the real ones exist: every question answered (two turns)."""
    # Distinct per model: identical placeholder pairs would look like one cached call to the forecast.
    return Answers(model_id=f"(not answered yet: {who})", path=Path("-"),
                   turns={q.question_id: [f"({who} answer)", f"({who} answer)"] for q in questions})
