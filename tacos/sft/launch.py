"""Run `llamafactory-cli train <yaml>` (torchrun underneath), stream its output to our log.

Nothing it starts outlives us: it runs under tacos.sft.guard, in a process group of its own. A failure or a stop of
the pipeline (exception, Ctrl-C, SIGTERM from SLURM) stops that group (SIGTERM, then SIGKILL) and the stage raises,
so no manifest is written for a partial run; a kill -9 of the pipeline is caught by the kernel's parent-death
signal to the guard, which then kills every training process, torchrun's workers (each in a session of its own)
included.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from tacos.llm.serving.process import free_port
from tacos.stage import StageError

log = logging.getLogger(__name__)

_PROGRESS = re.compile(r"\d+%\|")   # a tqdm bar redraw
PROGRESS_EVERY_S = 10.0             # progress bars reach our log at most this often (train.log has every line)
GUARD = Path(__file__).with_name("guard.py")  # run as a script: it imports nothing of ours
GUARD_GRACE_S = 20.0                # the guard's SIGTERM-to-SIGKILL wait; below stop_group's, so the guard acts first
# "ValueError: ..." as a worker prints it (torchrun prefixes "[rank0]: "); the launchers' own wrappers are not causes.
_ERROR = re.compile(r"^(?:\[rank\d+\]:\s*)?[\w.]*(?:Error|Exception): ")
_WRAPPERS = ("CalledProcessError", "ChildFailedError")


class TrainingFailed(StageError):
    """llamafactory-cli exited non-zero (the message carries the tail of its output)."""


def llamafactory_cli() -> str:
    """The llamafactory-cli of this interpreter's environment (the train extra)."""
    here = Path(sys.executable).parent / "llamafactory-cli"
    found = str(here) if here.is_file() else shutil.which("llamafactory-cli")
    if not found:
        raise StageError("llamafactory-cli not found: install the train extra "
                         "(VENV=.venv-train EXTRAS=dev,train bash scripts/install.sh) and run with that venv's python")
    return found


def launch_env(*, nproc_per_node: int, nnodes: int, node_rank: int, master_addr: str, master_port: int | None,
               cpu: bool, wandb: dict[str, str] | None) -> dict[str, str]:
    """Environment of the llamafactory-cli launch: torchrun topology, accelerator, W&B."""
    env = dict(os.environ)
    # torchrun is looked up on PATH: this interpreter's bin first, so the launch uses the same environment.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(FORCE_TORCHRUN="1", NPROC_PER_NODE=str(nproc_per_node), NNODES=str(nnodes), NODE_RANK=str(node_rank),
               MASTER_ADDR=master_addr, MASTER_PORT=str(master_port or free_port()))
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "ALLOW_EXTRA_ARGS"):
        env.pop(var, None)  # set by torchrun for its workers; stale values would confuse them
    if cpu:
        env["DS_ACCELERATOR"] = "cpu"
    # torch's deprecation notices from inside DeepSpeed, once per collective call: thousands of log lines.
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    for var in ("WANDB_RUN_ID", "WANDB_RESUME"):
        env.pop(var, None)  # the training run is its own W&B run (same group), never the pipeline's run
    if wandb:
        env.update(wandb)
    return env


def wandb_env(*, project: str, group: str, mode: str, run_dir: Path, entity: str | None) -> dict[str, str]:
    """The W&B environment of the training run: its own run in the pipeline run's project and group; WANDB_MODE from
    our environment wins over `mode` (the logger's)."""
    env = {"WANDB_PROJECT": project, "WANDB_RUN_GROUP": group, "WANDB_MODE": os.environ.get("WANDB_MODE") or mode,
           "WANDB_DIR": str(run_dir),  # next to the pipeline's own W&B run
           "WANDB_JOB_TYPE": "train"}
    if entity:
        env["WANDB_ENTITY"] = str(entity)
    return env


def run_streaming(cmd: list[str], *, cwd: Path, env: dict[str, str], log_file: Path) -> tuple[int, list[str]]:
    """Run cmd under the guard, every output line to log_file, progress-throttled lines to our logger; (exit code,
    last lines). Any exception here (KeyboardInterrupt, SystemExit from SIGTERM) stops the whole process group first."""
    tail: deque[str] = deque(maxlen=25)
    last_progress = 0.0
    with open(log_file, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        # Own session: a terminal's Ctrl-C reaches us first, and stop_group reaches the whole group. No preexec_fn
        # (unsafe while other threads run, e.g. W&B's): the guard asks for its parent-death signal itself and starts
        # nothing if we died before that. That signal fires when the forking *thread* exits: the stage runs in the
        # thread that then waits for the child, so no earlier than the stage's end.
        proc = subprocess.Popen([sys.executable, str(GUARD), str(os.getpid()), str(GUARD_GRACE_S), "--", *cmd],
                                cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1, errors="replace", stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            for line in proc.stdout:  # universal newlines: each tqdm '\r' redraw is a line
                line = line.rstrip()
                if not line:
                    continue
                out.write(line + "\n")
                tail.append(line)
                if _PROGRESS.search(line):
                    now = time.monotonic()
                    if now - last_progress < PROGRESS_EVERY_S:
                        continue
                    last_progress = now
                log.info("[llamafactory] %s", line)
            return proc.wait(), list(tail)
        except BaseException:
            stop_group(proc)
            raise


def stop_group(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM the child's process group (guard, llamafactory-cli, torchrun; the guard stops the workers), SIGKILL
    after grace_s."""
    if proc.poll() is not None:
        return
    log.warning("stopping the training processes (process group %d)", proc.pid)
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def train(yaml_file: Path, *, env: dict[str, str], log_file: Path) -> float:
    """llamafactory-cli train yaml_file, in the YAML's folder; the wall time. Raises TrainingFailed."""
    t0 = time.perf_counter()
    rc, tail = run_streaming([llamafactory_cli(), "train", yaml_file.name], cwd=yaml_file.parent, env=env,
                             log_file=log_file)
    seconds = time.perf_counter() - t0
    if rc != 0:
        cause = first_error(log_file) or "last lines:\n" + "\n".join(tail)
        raise TrainingFailed(f"llamafactory-cli train exited with code {rc} after {seconds:.0f} s: {cause}\n"
                             f"Full output: {log_file}; checkpoints are kept, re-running resumes.")
    return seconds


def first_error(log_file: Path) -> str | None:
    """The first exception a training process printed (the cause, not torchrun's wrapper around it)."""
    for line in Path(log_file).read_text(encoding="utf-8", errors="replace").splitlines():
        if _ERROR.match(line) and not any(w in line for w in _WRAPPERS):
            return line.strip()
    return None
