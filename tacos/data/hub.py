"""The Hugging Face hub as a pool source: `dataset=hf` (`hf_name`), and the hub copy of a pool file this machine does
not have (`hub_fallback` of dataset=alpaca / evol_instruct).

`datasets` caches what it downloads (under HF_HOME), so only the first run needs the network. run.py's `offline=true`
(the default) sets HF_HUB_OFFLINE / HF_DATASETS_OFFLINE: then only that cache is read and a dataset not in it fails
at once instead of hanging on a download.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tacos.data.pool_text import DataError

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def hub_offline() -> bool:
    """True when downloads from the hub are switched off (run.py's offline=true, or the user's environment)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARS)


def load_hub_dataset(hf_name: str, split: str, where: str, unavailable_hint: str) -> Any:
    """`datasets.load_dataset(hf_name, split=split)`; a DataError that ends with `unavailable_hint` when it cannot be
    loaded (not cached while offline, no network, no such name or split)."""
    try:
        import datasets
    except ImportError as e:
        raise DataError(f"{where}: the `datasets` package is not installed. Install it (pip install datasets) "
                        "or download the data yourself and set dataset.path to the .json/.jsonl file.") from e
    try:
        return datasets.load_dataset(hf_name, split=split)
    except Exception as e:  # datasets raises many unrelated types; all mean "not loadable"
        raise DataError(f"{where} could not be loaded ({type(e).__name__}: {e}). {unavailable_hint}") from e


def hf_name_hint() -> str:
    """What to do when `dataset.hf_name` cannot be loaded."""
    if hub_offline():
        return ("Offline mode is on (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE) and the dataset is not in the local cache: "
                "fetch it once with network access (offline=false), or set dataset.path to a local file.")
    return "Check the name, the split and your network access, or set dataset.path."


def missing_file_hint(dataset: str, file: Path, path_env: str | None) -> str:
    """What to do when the hub copy standing in for the missing pool `file` cannot be loaded: the one command line
    that downloads it, or the one that points at a copy of the file."""
    own_copy = (f"`{path_env}=/path/to/{file.name} python run.py dataset={dataset}`" if path_env else
                f"`python run.py dataset={dataset} dataset.path=/path/to/{file.name}`")
    reason = f"dataset={dataset} reads the hub copy because {file} does not exist"
    if hub_offline():
        return (f"{reason}, and offline mode (offline=true, the default, or HF_HUB_OFFLINE/HF_DATASETS_OFFLINE in "
                f"the environment) allows no download. Fix: add offline=false to the command, "
                f"`python run.py dataset={dataset} offline=false` (downloads it once into the Hugging Face cache; "
                f"later runs read the cache), or use the file you have: {own_copy}.")
    return f"{reason}. Check your network access, or download {file.name} yourself and run {own_copy}."
