"""Process-lifecycle test helpers, and the owner process those tests start and then interrupt or kill.

    python tests/_server_child.py dummy|llama sleep|raise LOG_DIR

starts a server, prints `READY <server pid>`, then sleeps or raises. `dummy` is a `sleep 60` child through
ServerProcess (no model; atexit / PDEATHSIG must clean up); `llama` is LocalLlamaCpp in a `with` block.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tacos.llm.endpoints import LocalLlamaCpp
from tacos.llm.process import ServerProcess


REPO = Path(__file__).resolve().parents[1]


def gone(pid: int, within_s: float = 0.0) -> bool:
    """True once the pid no longer exists or is a zombie (whoever reaps orphans here may be slow)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def spawn_owner(log_dir: Path, kind: str = "dummy", action: str = "sleep") -> tuple[subprocess.Popen, int]:
    """Start this script as a subprocess; returns it and the pid of the server it started.

    Finish it with `owner.communicate(timeout=...)`, which also closes its stdout pipe.
    """
    err = log_dir / "owner.stderr"
    with open(err, "wb") as errf:
        owner = subprocess.Popen([sys.executable, __file__, kind, action, str(log_dir)], stdout=subprocess.PIPE,
                                 stderr=errf, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    line = owner.stdout.readline()
    if not line.startswith("READY"):
        owner.kill()
        owner.communicate()
        raise RuntimeError(f"owner process did not start its server: {line!r}\n{err.read_text()[-3000:]}")
    return owner, int(line.split()[1])


def _then(action: str) -> None:
    if action == "raise":
        raise RuntimeError("boom inside the server's lifetime")
    time.sleep(120)


def main(kind: str, action: str, log_dir: Path) -> None:
    if kind == "dummy":
        server = ServerProcess([sys.executable, "-c", "import time; time.sleep(60)"], log_dir / "dummy.log",
                               name="dummy").spawn()
        print(f"READY {server.pid}", flush=True)
        _then(action)
    else:
        provider = LocalLlamaCpp(n_ctx=512)
        with provider:
            print(f"READY {provider.pid}", flush=True)
            _then(action)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
