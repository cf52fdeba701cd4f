"""Helpers shared by stages: prompt files, the pool, config slices."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from tacos.paths import prompt_path
from tacos.records import Record, read_jsonl


@lru_cache(maxsize=64)
def read_prompt(name: str) -> str:
    return prompt_path(name).read_text(encoding="utf-8")


def prompts_hash(*names: str) -> str:
    """Hash of the prompt files' bytes: part of every cache key, so editing a prompt invalidates exactly its calls."""
    h = hashlib.sha256()
    for n in names:
        h.update(prompt_path(n).read_bytes())
        h.update(b"\x00")
    return h.hexdigest()


def fill(template: str, **values: Any) -> str:
    """Replace {name} placeholders by plain substitution (prompts contain literal JSON braces)."""
    for k, v in values.items():
        template = template.replace("{" + k + "}", str(v))
    return template


def load_pool(ctx) -> list[Record]:
    """The records written by the data stage of this run."""
    return read_jsonl(ctx.input_dir("data") / "records.jsonl", Record)


def pool_for_plan(ctx) -> list[Record]:
    """For dry runs: the data stage's output when present, else the configured source read directly."""
    p = ctx.run_dir / "data" / "records.jsonl"
    if (ctx.run_dir / "data" / "manifest.json").is_file():
        return read_jsonl(p, Record)
    return ctx.component("dataset").load(seed=int(ctx.cfg.seed))


def instruction_text(r: Record, include_input: bool = True) -> str:
    return f"{r.instruction}\n{r.input}" if include_input and r.input else r.instruction


def check_errors(ctx, results: list, what: str) -> int:
    """Transport errors after all retries fail the stage (re-running re-issues only those: the rest is cached)."""
    from tacos.pipeline import StageError

    n_err = sum(1 for r in results if r.status == "error")
    rate = n_err / max(1, len(results))
    if n_err and rate > float(ctx.cfg.client.max_error_rate):
        first = next(r.error for r in results if r.status == "error")
        raise StageError(f"{what}: {n_err}/{len(results)} LLM calls failed after retries (first error: {first}). "
                         f"Answered calls are cached; re-run to retry only the failed ones.")
    return n_err


def empty_plan() -> dict:
    return {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "usd": 0.0, "exact": True}


def write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
