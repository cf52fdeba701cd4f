"""The answers registry: paths.answers_dir/<model>/<entry>/<bench>/<model_id>.jsonl.

The infer stage registers every run's answers under an entry named after the run (`entry_name`: the run name, which
carries a hash of its selection config and `-seed<k>` for seeds other than 0, so the runs of a sweep do not replace
each other), and the base model's under `base` (`base-seed<k>`); the judge stage resolves a baseline name
(judge.baselines=[alpaca-random], [alpaca-random-seed1], or the full name alpaca-random-1a2b3c) to that folder for the
same model: the exact entry, else the one entry whose name without its hash is that name. This is how a TACOS run is
judged against baselines trained in other runs of a sweep, in whatever order they finished.

Each entry records the run dir and the config key of the run that made it (source.json); an entry is replaced only by
a run of the same config (a re-run): a run with another config under the same name is refused before it starts.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

SOURCE_FILE = "source.json"
BASE_MODEL = "base"  # the entry of the model before fine-tuning (infer.base_answers)


class RegistryConflict(ValueError):
    """An entry of this name was made by a run of another config."""


def entry_name(run_name: str, seed: int) -> str:
    """The registry entry of a run: `<run_name>` (a generated run name already ends in -seed<k> for seeds other than
    0), else `<run_name>-seed<seed>` for seeds other than 0."""
    seed = int(seed)
    if seed == 0 or str(run_name).endswith(f"-seed{seed}"):
        return str(run_name)
    return f"{run_name}-seed{seed}"


def check_entry(dest: Path, config_key: str | None, run_dir: Path | None = None) -> None:
    """Refuse to replace an entry that another run of another config made (a re-run of the same config, or any re-run
    in the run dir that made it, replaces it)."""
    source = read_source(dest)
    old = source.get("config_key")
    same_run = run_dir is not None and source.get("run_dir") == str(Path(run_dir).resolve())
    if config_key and old and old != config_key and not same_run:
        raise RegistryConflict(
            f"answers registry entry {dest} was made by a run of another config ({source.get('run_dir')}); "
            f"this run would replace it. Give this run another name (run_label=NAME or run_name=NAME), or delete "
            f"{dest} to replace it")


def read_source(dest: Path) -> dict:
    try:
        return json.loads((Path(dest) / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def register_run(model_dir: Path, run_name: str, seed: int, stage_dir: Path, manifest: dict,
                 config_key: str | None = None) -> None:
    """Register an infer stage's answers (its manifest's `answer_files`, and the base model's under `base`) in
    model_dir = <answers_dir>/<model>; `config_key` identifies the config that made them (check_entry)."""
    stats = manifest.get("stats", {})
    register_answers(stage_dir, stats.get("answer_files", {}), Path(model_dir) / entry_name(run_name, seed), manifest,
                     config_key)
    if stats.get("base"):  # the model before SFT: the same for every run of this model, whatever it selected
        register_answers(stage_dir, stats["base"]["answer_files"], Path(model_dir) / entry_name(BASE_MODEL, seed),
                         manifest)


def register_answers(stage_dir: Path, answer_files: dict[str, str], dest: Path, manifest: dict,
                     config_key: str | None = None) -> None:
    if not answer_files:
        return
    check_entry(dest, config_key, stage_dir.parent)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for bench, rel in answer_files.items():
        target = tmp / bench / Path(rel).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(stage_dir / rel, target)
    (tmp / SOURCE_FILE).write_text(json.dumps({"run_dir": str(stage_dir.parent.resolve()),
                                               "output_hash": manifest.get("output_hash"),
                                               "config_key": config_key}, indent=2) + "\n")
    old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
    if dest.exists():
        os.replace(dest, old)  # the newest run of an entry replaces the previous one as a whole
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def is_name(entry: str) -> bool:
    """A bare name (registry lookup) rather than a path: no separator and nothing of that name here."""
    return "/" not in entry and os.sep not in entry and not Path(entry).exists()


def registered(model_dir: str | Path, name: str) -> Path | None:
    """The folder of entry `name` in model_dir = <answers_dir>/<model>: the exact entry, else the one entry whose name
    without its config hash is `name` (alpaca-random -> alpaca-random-1a2b3c); None when there is none. Several such
    entries (runs of different configs under one label) are an error that lists them."""
    from tacos.run_names import run_label_of

    folder = Path(model_dir) / name
    if folder.is_dir():
        return folder
    matches = [n for n in names(model_dir) if run_label_of(n) == name]
    if len(matches) > 1:
        raise ValueError(f"{name!r} names {len(matches)} registered runs in {model_dir} ({', '.join(matches)}): "
                         f"they differ in their selection config; name the one you mean in full")
    return Path(model_dir) / matches[0] if matches else None


def names(model_dir: str | Path) -> list[str]:
    root = Path(model_dir)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
