"""Read an offline W&B run back, without a server: the run's record log (<run dir>/wandb/offline-run-*/run-<id>.wandb)
is a LevelDB-style log of `wandb.proto` Record messages, the same records `wandb sync` uploads. (wandb 0.31 has no
Python reader of it any more: its Go core reads it. The log format: a 7-byte header ':W&B', magic 0xBEE1, version;
then 32 KiB blocks of chunks, each with a 7-byte header crc32 (4), length (2), type (1: full, 2: first, 3: middle,
4: last).)"""
from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

BLOCK, HEADER = 32768, 7


def records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:HEADER])
    assert ident == b":W&B" and magic == 0xBEE1, f"{path} is not a W&B record log"
    pos, buf = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        pos += HEADER
        if kind == 0 and length == 0:  # zero padding up to the block end
            pos += left - HEADER
            continue
        chunk, pos = data[pos:pos + length], pos + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            yield record


@dataclass
class OfflineRun:
    folder: Path
    name: str = ""
    group: str = ""
    job_type: str = ""
    started: float = 0.0
    config: dict = field(default_factory=dict)
    history_keys: set = field(default_factory=set)
    summary: dict = field(default_factory=dict)
    logged: list = field(default_factory=list)  # ArtifactRecord of artifacts this run produced
    used: list = field(default_factory=list)  # ArtifactRecord of artifacts this run consumed (use_after_commit)

    def logged_key(self, key: str) -> bool:
        """Something was logged under key (a table or an image logs its fields as key/...)."""
        return any(k == key or k.startswith(f"{key}/") for k in self.history_keys)

    def table(self, key: str) -> dict:
        """A logged wandb.Table ({"columns", "data"}) by its key, read from the run's files/media/table/."""
        assert self.logged_key(key), key
        found = sorted((self.folder / "files" / "media" / "table").glob(f"{key}_*.table.json"))
        assert found, f"no table file for {key} in {self.folder}"
        return json.loads(found[-1].read_text(encoding="utf-8"))


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_run(folder: Path, wait: float = 20.0) -> OfflineRun:
    """The run in an offline-run-* folder. W&B's core process writes the log after run.finish() returns, so this
    waits (up to `wait` seconds) for the run's exit record."""
    deadline = time.monotonic() + wait
    while True:
        try:
            found = list(records(next(Path(folder).glob("run-*.wandb"))))
        except Exception:  # a chunk half written
            found = []
        if any(r.WhichOneof("record_type") == "exit" for r in found) or time.monotonic() > deadline:
            return _run(Path(folder), found)
        time.sleep(0.2)


def _run(folder: Path, found: list) -> OfflineRun:
    run = OfflineRun(folder=folder)
    for r in found:
        kind = r.WhichOneof("record_type")
        if kind == "run":
            # The first run record starts the run; later ones (updates) may leave fields empty.
            run.name = run.name or r.run.display_name
            run.group = run.group or r.run.run_group
            run.job_type = run.job_type or r.run.job_type
            run.started = run.started or r.run.start_time.seconds + r.run.start_time.nanos / 1e9
            run.config.update({u.key: json.loads(u.value_json) for u in r.run.config.update})
        elif kind == "history":
            run.history_keys |= {_key(i) for i in r.history.item}
        elif kind == "summary":
            run.summary.update({_key(u): json.loads(u.value_json) for u in r.summary.update})
        elif kind == "artifact" and r.artifact.type not in ("run_table", "wandb-history"):
            (run.used if r.artifact.use_after_commit else run.logged).append(r.artifact)
    return run


def read_runs(wandb_dir: Path) -> list[OfflineRun]:
    """Every offline run under a wandb/ folder, in start order."""
    return sorted((read_run(f) for f in Path(wandb_dir).glob("offline-run-*")), key=lambda r: r.started)


def entries(artifact) -> dict[str, str]:
    """path -> reference URI ('' for a file stored in the artifact) of an ArtifactRecord's manifest."""
    return {e.path: e.ref for e in artifact.manifest.contents}
