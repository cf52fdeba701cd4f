"""The answers registry: paths.answers_dir/<model>/<name>/<bench>/<model_id>.jsonl.

The infer stage registers every run's answers under its run name (and the base model's under `base`); the judge
stage resolves a bare baseline name (judge.baselines=[baseline_random]) to that folder for the same model. This is
how a TACOS run is judged against baselines trained in other runs of a sweep, in whatever order they finished.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

SOURCE_FILE = "source.json"


def register_answers(stage_dir: Path, answer_files: dict[str, str], dest: Path, manifest: dict) -> None:
    if not answer_files:
        return
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for bench, rel in answer_files.items():
        target = tmp / bench / Path(rel).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(stage_dir / rel, target)
    (tmp / SOURCE_FILE).write_text(json.dumps({"run_dir": str(stage_dir.parent.resolve()),
                                               "output_hash": manifest.get("output_hash")}, indent=2) + "\n")
    old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
    if dest.exists():
        os.replace(dest, old)  # the newest run of a name replaces the previous one as a whole
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def is_name(entry: str) -> bool:
    """A bare name (registry lookup) rather than a path: no separator and nothing of that name here."""
    return "/" not in entry and os.sep not in entry and not Path(entry).exists()


def registered(answers_dir: str | Path, model: str, name: str) -> Path | None:
    folder = Path(answers_dir) / model / name
    return folder if folder.is_dir() else None


def names(answers_dir: str | Path, model: str) -> list[str]:
    root = Path(answers_dir) / model
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
