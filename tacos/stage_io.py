"""What several stages read the same way: this run's pool and the clusters. A stage never imports another stage
(tests/test_architecture.py): what two stages share lives here, next to the stage contract (tacos.stage)."""
from __future__ import annotations

import json
from pathlib import Path

from tacos.records import Record, read_jsonl
from tacos.stage import MANIFEST

CLUSTERS = "clusters.json"


def load_pool(ctx) -> list[Record]:
    """The records written by this run's data stage."""
    return read_jsonl(ctx.input_dir("data") / "records.jsonl", Record)


def pool_for_plan(ctx) -> list[Record]:
    """For dry runs: the rows the runner read once for every forecast (ctx.plan_pool), else the data stage's output
    when present, else the configured source read directly."""
    if ctx.plan_pool is not None:
        return ctx.plan_pool
    if (ctx.run_dir / "data" / MANIFEST).is_file():
        return load_pool(ctx)
    return ctx.component("dataset").load(seed=ctx.seed)


def write_clusters(stage_dir: Path, clusters: dict[int, list[str]]) -> None:
    """clusters.json of a cluster stage folder: cluster id -> member record ids, by cluster id."""
    (Path(stage_dir) / CLUSTERS).write_text(
        json.dumps({str(c): ids for c, ids in sorted(clusters.items())}, indent=1) + "\n", encoding="utf-8")


def read_clusters(stage_dir: Path) -> dict[int, list[str]]:
    """clusters.json of a cluster stage folder: cluster id -> member record ids."""
    raw = json.loads((Path(stage_dir) / CLUSTERS).read_text(encoding="utf-8"))
    return {int(c): ids for c, ids in raw.items()}
