"""What lives in train.output_dir: the checkpoints (which one a re-run resumes from), the marker naming the recipe
they belong to, and the losses and results the Trainer leaves there.

The checkpoints and the final model are outside the stage folder, so a killed run keeps them; a re-run resumes from
the newest complete checkpoint of the *same* recipe, and refuses another recipe's unless told to discard them.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from tacos.stage import StageError

log = logging.getLogger(__name__)

MARKER = "tacos_recipe.json"  # in output_dir: which recipe its checkpoints belong to
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def resume_plan(output_dir: Path, rhash: str, resume: bool) -> tuple[str | None, bool, list[Path]]:
    """(checkpoint to resume from, overwrite_output_dir, stale checkpoints to delete); changes nothing itself."""
    if not output_dir.is_dir():
        return None, False, []
    ckpts = checkpoints(output_dir)
    marker = output_dir / MARKER
    old = json.loads(marker.read_text(encoding="utf-8")).get("recipe_sha256") if marker.is_file() else None
    if ckpts and resume:
        if old != rhash:
            raise StageError(f"train.output_dir {output_dir} holds checkpoints of a different training recipe "
                             f"({'unknown' if old is None else old[:12]} vs {rhash[:12]}). Set train.resume=false to "
                             f"discard them, or choose another train.output_dir.")
        usable = checkpoints(output_dir, complete=True)
        if usable:
            return str(usable[-1]), False, []
        log.warning("no complete checkpoint in %s (killed while saving?): training from scratch", output_dir)
        return None, True, ckpts
    # resume=false: old checkpoints go (a later resume would pick them up); a previous final model is overwritten
    return None, any(p.name != MARKER for p in output_dir.iterdir()), ckpts


def prepare(output_dir: Path, stale: list[Path], marker: dict, remove_stale: bool) -> None:
    """Before the launch: delete the stale checkpoints (remove_stale: only node 0 of a multi-node run deletes, the
    others must not race it) and mark output_dir with the recipe its checkpoints will belong to."""
    for c in stale if remove_stale else []:
        log.info("removing checkpoint %s (train.resume=false or incomplete)", c)
        shutil.rmtree(c, ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / MARKER).write_text(json.dumps(marker, indent=1, default=str) + "\n", encoding="utf-8")


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
