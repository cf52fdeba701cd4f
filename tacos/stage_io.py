"""What several stages read the same way: this run's pool and the clusters. A stage never imports another stage
(tests/test_architecture.py): what two stages share lives here, next to the stage contract (tacos.stage)."""
from __future__ import annotations

import json
from pathlib import Path

from tacos.records import Record, read_jsonl
from tacos.stage import MANIFEST

CLUSTERS = "clusters.json"


# The stage whose records.jsonl is the pool every stage after it reads: the rows the data stage loaded, less those the
# clean stage removed. Stages that read the pool require this stage (with clean=none it keeps every row).
POOL_STAGE = "clean"


def load_raw_pool(ctx) -> list[Record]:
    """The records written by this run's data stage, before cleaning (only the clean stage reads these)."""
    return read_jsonl(ctx.input_dir("data") / "records.jsonl", Record)


def load_pool(ctx) -> list[Record]:
    """The pool: the records this run's clean stage kept."""
    return read_jsonl(ctx.input_dir(POOL_STAGE) / "records.jsonl", Record)


def pool_for_plan(ctx) -> list[Record]:
    """For dry runs: the clean stage's output when present, else the data stage's (or the configured source read
    directly) cleaned here: the checks are rules, instant and deterministic, so the forecast stays exact."""
    if (ctx.run_dir / POOL_STAGE / MANIFEST).is_file():
        return load_pool(ctx)
    raw = load_raw_pool(ctx) if (ctx.run_dir / "data" / MANIFEST).is_file() else \
        ctx.component("dataset").load(seed=ctx.seed)
    return ctx.component("clean").clean(raw).kept


def write_clusters(stage_dir: Path, clusters: dict[int, list[str]]) -> None:
    """clusters.json of a cluster stage folder: cluster id -> member record ids, by cluster id."""
    (Path(stage_dir) / CLUSTERS).write_text(
        json.dumps({str(c): ids for c, ids in sorted(clusters.items())}, indent=1) + "\n", encoding="utf-8")


def read_clusters(stage_dir: Path) -> dict[int, list[str]]:
    """clusters.json of a cluster stage folder: cluster id -> member record ids."""
    raw = json.loads((Path(stage_dir) / CLUSTERS).read_text(encoding="utf-8"))
    return {int(c): ids for c, ids in raw.items()}
