"""Stage `data`: load and validate the pool; every record gets a stable content id and keeps its row index."""
from __future__ import annotations

from pathlib import Path

from tacos.config import to_container
from tacos.records import file_sha256, write_jsonl

COMPONENTS = ("dataset",)
SHAREABLE = True  # output depends only on config + inputs: computed once across runs (tacos.store)


def requires(cfg) -> list[str]:
    return []


def uses_llm(cfg) -> bool:
    return False


def config_slice(cfg) -> dict:
    ds = to_container(cfg.dataset)
    path = ds.pop("path", None)
    # The file's content, not its location, identifies the pool.
    ds["file_sha256"] = file_sha256(path) if path and Path(path).is_file() else path
    return {"dataset": ds, "seed": int(cfg.seed)}


def run(ctx) -> dict:
    source = ctx.component("dataset")
    records = source.load(seed=int(ctx.cfg.seed))
    write_jsonl(ctx.out_dir / "records.jsonl", records)
    lengths = [len(r.output) for r in records]
    return {
        "counts": {"records": len(records), "with_input": sum(1 for r in records if r.input)},
        "stats": {"mean_output_chars": round(sum(lengths) / max(1, len(lengths)), 1)},
    }


