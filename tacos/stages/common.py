"""What several stages read the same way: this run's pool."""
from __future__ import annotations

from tacos.records import Record, read_jsonl


def load_pool(ctx) -> list[Record]:
    """The records written by this run's data stage."""
    return read_jsonl(ctx.input_dir("data") / "records.jsonl", Record)


def pool_for_plan(ctx) -> list[Record]:
    """For dry runs: the data stage's output when present, else the configured source read directly."""
    if (ctx.run_dir / "data" / "manifest.json").is_file():
        return load_pool(ctx)
    return ctx.component("dataset").load(seed=ctx.seed)
