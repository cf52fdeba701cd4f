"""The answers our model is compared with: one entry of the pairwise benchmark's `baselines` each.

An entry is an answer file <...>/<bench>/<model>.jsonl, a run dir with infer/, an infer stage folder, a folder of
<bench>/ subfolders (FastChat's model_answer layout), or a bare name registered in the answers registry
(tacos.answers.registry; the benchmark's `answers_dir`). A baseline is named in the results by its answer files' name
(FastChat's model id). Problems are ValueErrors that say what to do.
"""
from __future__ import annotations

import logging
from pathlib import Path

from tacos.answers import registry
from tacos.answers.answer_files import Answers, read_answers
from tacos.records import file_sha256

log = logging.getLogger(__name__)

KEY = "benchmarks.pairwise.baselines"  # where the entries are set (messages name it)


def baseline_files(entry: str, benches: list[str], answers_dir: str | None,
                   missing_baselines: str = "skip") -> dict[str, Path] | None:
    """bench -> answer file of one baselines entry for the answer folders `benches` the benchmark judges (None: a
    bare name not registered yet, and missing_baselines is "skip")."""
    if answers_dir and registry.is_name(entry):
        folder = registry.registered(answers_dir, entry)
        if folder is None:
            if missing_baselines == "error":
                have = registry.names(answers_dir)
                raise ValueError(f"{KEY}: no answers registered as {entry!r} in {answers_dir} "
                                 f"(registered: {have or 'none'}). Run that experiment with the same model first.")
            return None
        entry = str(folder)
    path = Path(entry).expanduser()
    if path.is_file():
        bench = path.parent.name
        if bench not in benches:
            raise ValueError(f"{KEY}: {path} answers {bench!r} (its folder's name), which this benchmark does not "
                             f"judge: name a file <...>/<bench>/<model>.jsonl with bench in {list(benches)}")
        return {bench: path}
    if not path.is_dir():
        raise ValueError(f"{KEY}: {entry} does not exist (relative paths are read from {Path.cwd()})")
    root = next((r for r in (path / "infer" / "model_answer", path / "model_answer", path)
                 if r.is_dir() and any((r / b).is_dir() for b in benches)), None)
    if root is None:
        raise ValueError(f"{KEY}: no answers under {path}; expected <run_dir>/infer/model_answer/<bench>/"
                         f"*.jsonl or <folder>/<bench>/*.jsonl with bench in {list(benches)}")
    out = {}
    for b in benches:
        files = sorted((root / b).glob("*.jsonl"))
        if len(files) > 1:
            raise ValueError(f"{KEY}: {root / b} holds answers of several models "
                             f"({', '.join(f.stem for f in files)}); list the one file you mean")
        if files:
            out[b] = files[0]
    return out


def baseline_fingerprints(spec) -> dict[str, dict[str, str] | None]:
    """entry -> {bench: sha256 of its answer file}: part of the judge stage's identity. A registered name that is
    missing now is None, so the stage judges again once it exists."""
    out: dict[str, dict[str, str] | None] = {}
    for entry in spec.baselines:
        files = baseline_files(entry, list(spec.test_sets), spec.answers_dir, spec.missing_baselines)
        out[entry] = None if files is None else {b: file_sha256(p) for b, p in files.items()}
    return out


def load_baselines(spec) -> tuple[dict[str, dict[str, Answers]], list[str]]:
    """(label (the model id of its answer files) -> bench -> answers, registered names not found yet)."""
    out: dict[str, dict[str, Answers]] = {}
    absent: list[str] = []
    for entry in spec.baselines:
        files = baseline_files(entry, list(spec.test_sets), spec.answers_dir, spec.missing_baselines)
        if files is None:
            log.warning("judge: baseline %r has no registered answers in %s yet: skipped (run it, then re-run "
                        "stages=[judge,report] here: only the new comparisons are judged)", entry, spec.answers_dir)
            absent.append(entry)
            continue
        if not files:
            raise ValueError(f"{KEY}: {entry} has answers for none of {list(spec.test_sets)}")
        answers = {b: read_answers(p) for b, p in files.items()}
        label = next(iter(answers.values())).model_id
        if label in out:
            raise ValueError(f"{KEY}: two baselines are both named {label!r} (their answer files' "
                             f"name); rename one file so the results can tell them apart")
        out[label] = answers
    return out, absent
