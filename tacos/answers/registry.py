"""The answers registry: paths.answers_dir/<model>/<entry>/<bench>/<model_id>.jsonl.

The infer stage registers every run's answers under an entry named after the run (`entry_name`: the run name, plus
`-seed<k>` for seeds other than 0, so the runs of a seed sweep do not replace each other), and the base model's
under `base` (`base-seed<k>`); the judge stage resolves a bare baseline name (judge.baselines=[baseline_random],
[baseline_random-seed1]) to that folder for the same model. This is how a TACOS run is judged against baselines
trained in other runs of a sweep, in whatever order they finished.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

SOURCE_FILE = "source.json"
BASE_MODEL = "base"  # the entry of the model before fine-tuning (infer.base_answers)


def entry_name(run_name: str, seed: int) -> str:
    """The registry entry of a run: `<run_name>` for seed 0 (as before seeds were told apart), else
    `<run_name>-seed<seed>`."""
    return str(run_name) if int(seed) == 0 else f"{run_name}-seed{int(seed)}"


def register_run(model_dir: Path, run_name: str, seed: int, stage_dir: Path, manifest: dict) -> None:
    """Register an infer stage's answers (its manifest's `answer_files`, and the base model's under `base`) in
    model_dir = <answers_dir>/<model>."""
    stats = manifest.get("stats", {})
    register_answers(stage_dir, stats.get("answer_files", {}), Path(model_dir) / entry_name(run_name, seed), manifest)
    if stats.get("base"):
        register_answers(stage_dir, stats["base"]["answer_files"], Path(model_dir) / entry_name(BASE_MODEL, seed),
                         manifest)


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
        os.replace(dest, old)  # the newest run of an entry replaces the previous one as a whole
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def is_name(entry: str) -> bool:
    """A bare name (registry lookup) rather than a path: no separator and nothing of that name here."""
    return "/" not in entry and os.sep not in entry and not Path(entry).exists()


def registered(model_dir: str | Path, name: str) -> Path | None:
    """The folder of entry `name` in model_dir = <answers_dir>/<model>, or None when it is not registered."""
    folder = Path(model_dir) / name
    return folder if folder.is_dir() else None


def names(model_dir: str | Path) -> list[str]:
    root = Path(model_dir)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
