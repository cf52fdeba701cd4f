"""The stage store: completed outputs of shareable stages, addressed by what determines them.

A stage's output is a function of (stage, config hash, input hashes, code version): `tacos.pipeline.Identity`
makes the key. Runs that share such a key share the output: the stage is computed once and copied (hard links where the filesystem allows) into every other
run dir. Three models trained on one selection compute the selection once; a sweep that varies only the scorer
reuses the tags. A file lock per key makes concurrent jobs (SLURM/Ray arrays) wait for the first instead of
computing the same stage twice; a job that waits longer than `lock_timeout_s` computes it itself (publishing is
atomic, so two computations of one key are harmless, only wasteful).
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # stage outputs are only ever replaced whole, never edited in place: links are safe
    except OSError:
        shutil.copy2(src, dst)


class StageStore:
    def __init__(self, root: str | Path, lock_timeout_s: float = 3600.0):
        self.root = Path(root)
        self.lock_timeout_s = lock_timeout_s

    def folder(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def lookup(self, stage: str, key: str) -> Path | None:
        folder = self.folder(stage, key)
        return folder if (folder / "manifest.json").is_file() else None

    @contextlib.contextmanager
    def lock(self, stage: str, key: str) -> Iterator[None]:
        """Hold the key's lock while computing, so concurrent jobs wait for the first one's output."""
        path = self.root / stage / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as fh:
            held = self._acquire(fh, stage, key)
            try:
                yield
            finally:
                if held:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def _acquire(self, fh, stage: str, key: str) -> bool:
        deadline = time.monotonic() + self.lock_timeout_s
        waiting = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if not waiting:
                    log.info("stage %s: another job is computing the same output (%s); waiting up to %.0f s",
                             stage, key, self.lock_timeout_s)
                    waiting = True
                if time.monotonic() > deadline:
                    log.warning("stage %s: waited %.0f s for another job's %s; computing it here", stage,
                                self.lock_timeout_s, key)
                    return False
                time.sleep(1.0)
            except OSError as e:  # e.g. a network filesystem without flock
                log.warning("stage store %s cannot lock (%s): concurrent jobs may compute the same stage twice",
                            self.root, e)
                return False

    def materialize(self, stored: Path, dest: Path) -> None:
        """Copy a stored stage folder to `dest` (which must not exist) through a partial folder + rename."""
        partial = dest.with_name(f".{dest.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(stored, partial, copy_function=_link_or_copy)
        os.replace(partial, dest)

    def publish(self, stage: str, key: str, done: Path) -> None:
        """Put a completed stage folder into the store (no-op when that key is already stored)."""
        final = self.folder(stage, key)
        if final.exists():
            return
        tmp = final.with_name(f".{key}.{os.getpid()}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(done, tmp, copy_function=_link_or_copy)
        try:
            os.replace(tmp, final)
        except OSError:  # another job published the same key first
            shutil.rmtree(tmp, ignore_errors=True)
