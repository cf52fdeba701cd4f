"""Run `llamafactory-cli train <yaml>` (torchrun underneath), stream its output to our log, read the results back.

The child gets its own process group: a failure or a kill of the pipeline (Ctrl-C, SIGTERM from SLURM) takes
torchrun and every worker down with it, and the stage raises, so no manifest is written for a partial run.
"""
from __future__ import annotations

import json
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

from tacos.pipeline import StageError
from tacos.train.validate import free_port

log = logging.getLogger(__name__)

_PROGRESS = re.compile(r"\d+%\|")   # a tqdm bar redraw
PROGRESS_EVERY_S = 10.0             # progress bars reach our log at most this often (train.log has every line)
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
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


def run_streaming(cmd: list[str], *, cwd: Path, env: dict[str, str], log_file: Path) -> tuple[int, list[str]]:
    """Run cmd, every output line to log_file, progress-throttled lines to our logger; (exit code, last lines).
    Any exception here (KeyboardInterrupt, SystemExit from SIGTERM) terminates the whole process group first."""
    tail: deque[str] = deque(maxlen=25)
    last_progress = 0.0
    with open(log_file, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
    """SIGTERM the child's process group (torchrun + workers), SIGKILL after grace_s."""
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


# -- results ---------------------------------------------------------------------------------------------------------
def checkpoints(output_dir: Path, complete: bool = False) -> list[Path]:
    """checkpoint-<step> folders, oldest first; complete=True: only those whose save finished (the Trainer writes
    trainer_state.json last), so a run killed while saving resumes from the previous one."""
    if not Path(output_dir).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(output_dir).iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found) if not complete or (p / "trainer_state.json").is_file()]


def losses(output_dir: Path) -> list[dict]:
    """[{step, loss, lr, epoch}] of the training run, from trainer_state.json (else LLaMA-Factory's trainer_log.jsonl)."""
    state = Path(output_dir) / "trainer_state.json"
    if state.is_file():
        hist = json.loads(state.read_text(encoding="utf-8")).get("log_history", [])
        return [{"step": h["step"], "loss": h["loss"], "lr": h.get("learning_rate"), "epoch": h.get("epoch")}
                for h in hist if "loss" in h]
    jsonl = Path(output_dir) / "trainer_log.jsonl"
    if not jsonl.is_file():
        return []
    rows = [json.loads(x) for x in jsonl.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [{"step": r["current_steps"], "loss": r["loss"], "lr": r.get("lr"), "epoch": r.get("epoch")}
            for r in rows if r.get("loss") is not None]


def results(output_dir: Path) -> dict:
    """What the manifest records about a finished run: model path, losses, steps, runtime."""
    output_dir = Path(output_dir)
    curve = losses(output_dir)
    summary = {}
    res = output_dir / "train_results.json"
    if res.is_file():
        summary = json.loads(res.read_text(encoding="utf-8"))
    state = output_dir / "trainer_state.json"
    global_step = json.loads(state.read_text(encoding="utf-8")).get("global_step") if state.is_file() else None
    ckpts = checkpoints(output_dir)
    out = {
        "model_path": str(output_dir),
        "last_checkpoint": str(ckpts[-1]) if ckpts else None,
        "global_step": global_step,
        "logged_steps": len(curve),
        "loss_first": curve[0]["loss"] if curve else None,
        "loss_last": curve[-1]["loss"] if curve else None,
        "loss_min": min(c["loss"] for c in curve) if curve else None,
        "train_loss": summary.get("train_loss"),
        "train_runtime_s": summary.get("train_runtime"),
        "epochs": summary.get("epoch"),
    }
    return out
