"""Where things live: the repository (bundled data, prompts), run outputs, the LLM call cache, assembled models.

`Paths` is what `conf/paths/default.yaml` builds; every path in it is made absolute against the working directory
at start, because child processes (LLaMA-Factory, torchrun, vLLM, the llama.cpp server) run elsewhere and a relative
path would point somewhere else for them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_DATA_DIR = REPO_ROOT / "data"


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
