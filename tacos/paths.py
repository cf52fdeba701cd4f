"""Where things live: repo data, run outputs, the LLM call cache, assembled local models."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"


@dataclass
class Paths:
    root_dir: str = str(REPO_ROOT)
    data_dir: str = str(REPO_ROOT / "data")
    output_dir: str = "outputs"
    cache_dir: str = "outputs/cache"
    store_dir: str = "outputs/store"
    answers_dir: str = "outputs/answers"
    model_cache_dir: str = str(Path.home() / ".cache" / "tacos" / "models")


def prompt_path(name: str) -> Path:
    """A prompt file by bare name (tacos/prompts/NAME) or by path; a missing file is a clear error."""
    p = Path(name)
    if not p.is_absolute() and not p.exists():
        p = PROMPTS_DIR / name
    if not p.is_file():
        available = ", ".join(sorted(x.name for x in PROMPTS_DIR.glob("*.txt")))
        raise FileNotFoundError(f"prompt file {name!r} not found (looked in {PROMPTS_DIR}); available: {available}")
    return p
