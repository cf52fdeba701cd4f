"""Prompt files and the one template function.

Prompts live as .txt files in this folder (or anywhere, by path); their bytes are hashed into every LLM cache key,
so editing a prompt re-asks exactly the calls that used it. `render` fills `{name}` placeholders in one pass.
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def prompt_path(name: str) -> Path:
    """A prompt file by bare name (tacos/prompts/NAME) or by path; a missing file is a clear error."""
    p = Path(name).expanduser()
    if not p.is_absolute() and not p.exists():
        p = PROMPTS_DIR / name
    if not p.is_file():
        available = ", ".join(sorted(x.name for x in PROMPTS_DIR.glob("*.txt")))
        raise FileNotFoundError(f"prompt file {name!r} not found (looked in {PROMPTS_DIR}); available: {available}")
    return p


@lru_cache(maxsize=64)
def read_prompt(name: str) -> str:
    return prompt_path(name).read_text(encoding="utf-8")


def prompts_hash(*names: str) -> str:
    """sha256 over the prompt files' bytes (in order): part of every cache key and stage identity that uses them."""
    h = hashlib.sha256()
    for n in names:
        h.update(prompt_path(n).read_bytes())
        h.update(b"\x00")
    return h.hexdigest()


def render(template: str, **values: object) -> str:
    """Fill {name} placeholders in one pass, so braces inside an instruction or a response are never expanded;
    unknown {words} (literal braces in the template) are left as they are."""
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


def clip(text: str, max_chars: int | None) -> str:
    """`text` when it has at most `max_chars` characters; else its head and tail around a marker that says how much
    was left out. The stated rule for over-long inputs: a prompt must fit the model's context, and a judge should
    still see how a response starts and ends (None or 0: no limit)."""
    if not max_chars or len(text) <= max_chars:
        return text
    marker = f"\n[... {len(text) - max_chars} characters omitted ...]\n"
    head = (max_chars * 2) // 3
    return text[:head] + marker + text[len(text) - (max_chars - head):]


def clipped(*texts: str, max_chars: int | None) -> int:
    """How many of `texts` `clip` shortens (counted into the manifests)."""
    return sum(1 for t in texts if max_chars and len(t) > max_chars)
