"""What several stages read the same way: this run's pool and the clusters. A stage never imports another stage
(tests/test_architecture.py): what two stages share lives here, next to the stage contract (tacos.stage)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from tacos.records import Record, read_jsonl
from tacos.stage import MANIFEST

CLUSTERS = "clusters.json"
log = logging.getLogger(__name__)


# The stage whose records.jsonl is the pool every stage after it reads: the rows the data stage loaded, less those the
# clean stage removed. Stages that read the pool require this stage (with clean=none it keeps every row).
POOL_STAGE = "clean"


def load_raw_pool(ctx) -> list[Record]:
    """The records written by this run's data stage, before cleaning (only the clean stage reads these)."""
    return read_jsonl(ctx.input_dir("data") / "records.jsonl", Record)


def load_pool(ctx) -> list[Record]:
    """The pool: the records this run's clean stage kept."""
    return read_jsonl(ctx.input_dir(POOL_STAGE) / "records.jsonl", Record)


def raw_pool_for_plan(ctx) -> list[Record]:
    """For dry runs: the data stage's output when present, else the configured source read directly."""
    return load_raw_pool(ctx) if (ctx.run_dir / "data" / MANIFEST).is_file() else \
        ctx.component("dataset").load(seed=ctx.seed)


def pool_for_plan(ctx) -> list[Record]:
    """For dry runs: the cleaned rows the runner read once for every forecast (ctx.plan_pool), else the clean stage's
    output when present, else the raw pool cleaned here. The rules are instant and deterministic; model checks run
    only when every call they need is in the cache (no server is started), so the forecast is exact then, and
    otherwise an upper bound (as if they removed nothing)."""
    if ctx.plan_pool is not None:
        return ctx.plan_pool
    if (ctx.run_dir / POOL_STAGE / MANIFEST).is_file():
        return load_pool(ctx)
    raw, cleaner = raw_pool_for_plan(ctx), ctx.component("clean")
    llm = None
    if cleaner.uses_llm and ctx.session is not None and \
            ctx.session.forecast(cleaner.requests(raw, ctx.seed))["calls"] == 0:
        llm = ctx.session  # all cached: answered by the cache-only client
    return cleaner.clean(raw, cleaner.context(llm, ctx.seed)).kept


def plan_pool(ctx) -> tuple[list | None, bool]:
    """(the pool's rows for every forecast, read once; whether they stand in for a pool that cannot be read here).
    A pool of known size (dataset.expected_rows: Alpaca-52k, Evol-Instruct-70k) that is neither on disk nor
    loadable from the hub is forecast from the bundled sample's rows repeated to that size (an estimate)."""
    from tacos.data.loaders import DataError
    from tacos.data.stand_in import stand_in_pool

    try:
        return pool_for_plan(ctx), False
    except DataError as e:
        ds = ctx.cfg.dataset
        if not ds.get("expected_rows"):
            log.debug("dry run: the pool cannot be read here (%s)", e)
            return None, False
        log.warning("dry run: the pool %s is not readable here (%s); forecasting %d rows of the bundled sample's "
                    "kind instead (an estimate; the real run reads the file or the hub)", ds.name,
                    str(e).split(". ")[0], ds.expected_rows)
        return stand_in_pool(int(ds.expected_rows), ds.get("limit")), True


def write_clusters(stage_dir: Path, clusters: dict[int, list[str]]) -> None:
    """clusters.json of a cluster stage folder: cluster id -> member record ids, by cluster id."""
    (Path(stage_dir) / CLUSTERS).write_text(
        json.dumps({str(c): ids for c, ids in sorted(clusters.items())}, indent=1) + "\n", encoding="utf-8")


def read_clusters(stage_dir: Path) -> dict[int, list[str]]:
    """clusters.json of a cluster stage folder: cluster id -> member record ids."""
    raw = json.loads((Path(stage_dir) / CLUSTERS).read_text(encoding="utf-8"))
    return {int(c): ids for c, ids in raw.items()}
