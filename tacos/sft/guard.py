"""`python -m tacos.sft.guard PARENT_PID GRACE_S -- CMD ...`: run CMD so that nothing it starts outlives PARENT_PID.

Why a process of its own: `llamafactory-cli train` starts torchrun, and torchrun starts every worker in a session of
its own. Neither a signal to llamafactory-cli's process group nor the kernel's parent-death signal of
llamafactory-cli (which is not inherited by its children) reaches the workers, so a `kill -9` of run.py used to leave
torchrun and its workers training. The guard sits between run.py and llamafactory-cli (launch.run_streaming starts it
in a new session, so it leads the process group of llamafactory-cli and torchrun):
  * it is a child subreaper (PR_SET_CHILD_SUBREAPER): a descendant whose parent dies is re-parented to the guard, so
    every training process stays its descendant and is found by walking /proc;
  * the kernel sends it SIGTERM when PARENT_PID dies, kill -9 included (PR_SET_PDEATHSIG);
  * on SIGTERM it stops every descendant: at once with SIGKILL when the parent is gone (nobody waits for a clean
    exit), else (run.py stopping the run: Ctrl-C, SLURM's SIGTERM) SIGTERM first, so torchrun ends its workers
    cleanly, and SIGKILL for whatever is left after GRACE_S.
The exit code is CMD's (128 + signal number when stopped). Linux only, like the prctl calls it makes.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36


class _Stop(Exception):
    """SIGTERM arrived: the parent died or asks us to stop."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Stop


def descendants(pid: int) -> list[int]:
    """Every live (non-zombie) process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:  # exited meanwhile
            continue
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]  # the command name may hold spaces and parentheses
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _signal_all(sig: int) -> int:
    """Send sig to every descendant; how many there were."""
    pids = descendants(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return len(pids)


def _reap() -> None:
    """Collect exited children (orphans re-parented to us included), so they leave /proc."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop_descendants(grace_s: float) -> None:
    """SIGTERM every descendant, SIGKILL those still alive after grace_s (grace_s=0: SIGKILL at once)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the shutdown
    deadline = time.monotonic() + grace_s
    if grace_s > 0:
        _signal_all(signal.SIGTERM)
        while time.monotonic() < deadline:
            _reap()
            if not descendants(os.getpid()):
                return
            time.sleep(0.2)
    while _signal_all(signal.SIGKILL):
        time.sleep(0.1)
        _reap()


def main(argv: list[str]) -> int:
    parent, grace_s, cmd = int(argv[0]), float(argv[1]), argv[argv.index("--") + 1:]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # From here on the kernel signals us when the parent dies; a parent that died before is noticed by getppid().
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    try:
        if os.getppid() != parent:
            raise _Stop
        child = subprocess.Popen(cmd)  # same process group, same stdout/stderr (the parent's pipe)
        rc = child.wait()
    except _Stop:
        # Parent gone: nobody reads our output any more (a write would raise BrokenPipeError), nobody waits.
        stop_descendants(0.0 if os.getppid() != parent else grace_s)
        return 128 + signal.SIGTERM
    stop_descendants(grace_s)  # normally none are left; a worker that outlived torchrun must not train on
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
