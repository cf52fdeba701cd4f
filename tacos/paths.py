"""Where things live: the repository (bundled data, prompts), run outputs, the LLM call cache, assembled models.

The repository's conf/, data/, train/ and measurements/results/ stay at the root of a checkout; a wheel (`pip install .`)
carries the same folders as tacos/_bundled/ (setup.py), and REPO_ROOT is wherever they are, so that an installed
`tacos run` composes its config and finds the bundled data outside the checkout.

`Paths` is what `conf/paths/default.yaml` builds; every path in it is made absolute against the working directory
at start, because child processes (LLaMA-Factory, torchrun, vLLM, the llama.cpp server) run elsewhere and a relative
path would point somewhere else for them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE_DIR.parent
INSTALLED = not (_CHECKOUT / "conf" / "config.yaml").is_file()  # a wheel's copy, not a checkout (or editable install)
REPO_ROOT = PACKAGE_DIR / "_bundled" if INSTALLED else _CHECKOUT
BUNDLED_DATA_DIR = REPO_ROOT / "data"
# Hydra's primary config folder, by its file path in both layouts (pkg:// would need an __init__.py in every folder
# of conf/; a wheel is installed unpacked, so the path exists).
CONFIG_PATH = str(REPO_ROOT / "conf")


def absolute(path: str | Path) -> Path:
    """`path` with ~ expanded, made absolute against the working directory (no symlink resolution)."""
    return Path(path).expanduser().absolute()


@dataclass
class Paths:
    root_dir: str = str(REPO_ROOT)
    data_dir: str = str(BUNDLED_DATA_DIR)
    output_dir: str = "outputs"
    cache_dir: str = "outputs/cache"
    store_dir: str = "outputs/store"
    answers_dir: str = "outputs/answers"
    model_cache_dir: str = str(Path.home() / ".cache" / "tacos" / "models")

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, str(absolute(getattr(self, f.name))))
