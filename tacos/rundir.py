"""The run directory on disk: one process at a time, durable publication of a finished stage folder, and the
check that a finished folder still holds what its manifest says. A full disk is a `DiskFull` naming the path."""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from pathlib import Path
from typing import Iterator

from tacos.records import DiskFull, is_disk_full
from tacos.stage import StageError, outputs_hash, read_manifest

log = logging.getLogger(__name__)


def intact(folder: Path) -> bool:
    """The folder's files still hash to what its manifest says (nothing edited, truncated or lost since)."""
    m = read_manifest(folder.parent, folder.name)
    return bool(m) and outputs_hash(folder) == m.get("output_hash")


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """A full disk (or quota) while writing `path` becomes a DiskFull naming it (an fsync's error names nothing)."""
    try:
        yield
    except OSError as e:
        if is_disk_full(e) and not isinstance(e, DiskFull):
            raise DiskFull(e.filename or path, e.errno) from e
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        with writing(path):  # a deferred write error (ENOSPC on NFS, quotas) shows up here
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file and directory under `folder` to disk, so the rename that publishes it survives a crash."""
    for p in sorted(folder.rglob("*"), reverse=True) + [folder]:
        _fsync(p)


def publish_folder(partial: Path, final: Path) -> None:
    """Make a complete `partial` folder appear as `final` in one rename (an older `final` is replaced)."""
    fsync_tree(partial)
    with writing(final):
        if final.exists():
            trash = final.with_name(f".{final.name}.old")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            os.replace(partial, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(partial, final)
    _fsync(final.parent)  # the rename itself is durable once the directory is synced


@contextlib.contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """One process per run dir: a second `python run.py hydra.run.dir=X` fails at once instead of sharing the
    partial folders of the first."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise StageError(f"another TACOS process (pid {fh.read().strip() or '?'}) is running in {run_dir}; wait "
                             f"for it to finish or use another hydra.run.dir") from None
        except OSError as e:  # a filesystem without locks: go on, as before locks existed
            log.warning("cannot lock %s (%s): make sure no other run uses this run dir", run_dir, e)
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
