"""Stage `data`: load and validate the pool; every record gets a stable content id and keeps its row index."""
from __future__ import annotations

from tacos.config import to_container
from tacos.records import file_sha256, write_jsonl
from tacos.stage import StageBase, StageResult


class DataStage(StageBase):
    name, shareable, components = "data", True, ("dataset",)

    def config_slice(self, cfg) -> dict:
        from tacos.data.loaders import find_file, resolve_path

        ds = to_container(cfg.dataset)
        path = ds.pop("path", None)
        ds.pop("path_env", None)  # only named in an error message
        # The file's content, not its location, identifies the pool; the path is resolved exactly as the loader
        # resolves it (~, the working directory, then the repository root), so an edited file is never stale.
        file = resolve_path(path) if path and find_file(path) is not None else None  # a directory, FIFO or unreadable
        if file is not None:                                                     # file: one line naming it
            ds.pop("hub_fallback", None)  # unused while the file exists: runs made before it existed keep their id
        elif path and not ds.get("hub_fallback"):
            resolve_path(path)  # raises: the file is missing and nothing stands in for it
        # A missing file with a hub copy: the hub dataset's name (kept in `ds`) identifies the pool.
        ds["file_sha256"] = file_sha256(file) if file else None
        return {"dataset": ds, "seed": int(cfg.seed)}

    def run(self, ctx) -> StageResult:
        records = ctx.component("dataset").load(seed=ctx.seed)
        write_jsonl(ctx.out_dir / "records.jsonl", records)
        lengths = [len(r.output) for r in records]
        return StageResult(counts={"records": len(records), "with_input": sum(1 for r in records if r.input)},
                           stats={"mean_output_chars": round(sum(lengths) / max(1, len(lengths)), 1)})


STAGE = DataStage()
