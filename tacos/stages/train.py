"""Stage `train`: SFT of `model` on the exported subset with LLaMA-Factory + DeepSpeed ZeRO-3.

Order (every check before anything is downloaded or launched): data -> GPUs -> base model -> recipe files ->
validation by LLaMA-Factory's and DeepSpeed's parsers -> `llamafactory-cli train` (torchrun) -> losses/checkpoint.
The checkpoints and the final model live in train.output_dir (default <run_dir>/train_output), outside the stage
folder, so a killed run keeps them and re-running resumes from the newest checkpoint of the same recipe.
The stage folder holds train.yaml, ds_<kind>.json, dataset_info.json, validation_report.json, train.log and copies
of trainer_state.json / trainer_log.jsonl / train_results.json / training_loss.png.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from tacos.config import to_container
from tacos.pipeline import StageError

log = logging.getLogger(__name__)

COMPONENTS = ("train", "model")
MARKER = "tacos_recipe.json"  # in output_dir: which recipe its checkpoints belong to
_NOT_IDENTITY = ("master_addr", "master_port", "node_rank", "resume", "allow_cpu")
_COPIED = ("trainer_state.json", "trainer_log.jsonl", "train_results.json", "training_loss.png")


def _source(cfg) -> str | None:
    """The stage whose subset is trained on: the refined one when this run refines, else the export."""
    if cfg.train.dataset:
        return None
    return "refine" if "refine" in cfg.stages else "export"


def requires(cfg) -> list[str]:
    return [_source(cfg)] if _source(cfg) else []


def uses_llm(cfg) -> bool:
    return False


def config_slice(cfg) -> dict:
    from tacos.records import file_sha256
    from tacos.train.preflight import resolve_dataset

    train = {k: v for k, v in to_container(cfg.train).items() if k not in _NOT_IDENTITY}
    slice_ = {"train": train, "model": to_container(cfg.model), "seed": int(cfg.seed)}
    if cfg.train.dataset:  # an outside file is not covered by the runner's input hashes: hash it here
        try:
            slice_["dataset_sha256"] = file_sha256(resolve_dataset(Path(cfg.train.dataset), cfg.train.dataset_name).file)
        except StageError:
            slice_["dataset_sha256"] = None  # run() reports the problem
    return slice_


def run(ctx) -> dict:
    from tacos.train import launch, preflight, recipe
    from tacos.train.validate import ValidationJob, validate_recipe

    cfg, tcfg, spec = ctx.cfg, ctx.component("train"), ctx.component("model")
    preflight.check_train_extra()
    data = preflight.resolve_dataset(Path(tcfg.dataset) if tcfg.dataset else ctx.input_dir(_source(cfg)), tcfg.dataset_name)
    gpus = preflight.visible_gpus()
    if tcfg.launch:
        preflight.check_gpus(spec, tcfg, gpus)
    nproc = preflight.processes_per_node(tcfg, gpus)
    plan = recipe.batch_plan(spec, nproc * int(tcfg.nnodes))
    log.info("batch: %d node(s) x %d process(es) x %d per device x grad-accum %d = effective batch %d%s",
             tcfg.nnodes, nproc, plan.per_device, plan.grad_accum, plan.effective,
             f" (target {plan.target})" if plan.target else " (fixed grad-accum)")
    model_path, hidden = preflight.resolve_model(spec, Path(cfg.paths.output_dir) / "models", required=tcfg.launch)
    output_dir = Path(tcfg.output_dir or ctx.run_dir / "train_output").resolve()
    kind = recipe.deepspeed_kind(spec, tcfg)
    ds = recipe.deepspeed_config(kind)
    report_to, wandb_env = _wandb(cfg, tcfg, ctx.run_dir)
    args = recipe.llamafactory_args(spec, tcfg, model_path=model_path, data=data, output_dir=output_dir, plan=plan,
                                    deepspeed_file=f"ds_{kind}.json" if ds else None, report_to=report_to,
                                    run_name=f"train-{spec.name}-{cfg.run_name}", seed=int(cfg.seed))
    cpu = gpus == 0
    adapted = recipe.adapt_to_cpu(args, ds) if cpu and tcfg.launch else []
    if adapted:
        log.info("no GPU: recipe adapted for CPU (%s)", "; ".join(adapted))
    data_sha = preflight.dataset_sha256(data)
    rhash = recipe.recipe_hash(args, ds, data_sha)
    resumed_from, overwrite, stale = _resume_plan(output_dir, rhash, tcfg.resume) if tcfg.launch else (None, False, [])
    if resumed_from:
        args["resume_from_checkpoint"] = resumed_from
    if overwrite:
        args["overwrite_output_dir"] = True
    files = recipe.write_recipe(ctx.out_dir, args, ds, data)
    report = validate_recipe(ValidationJob(str(files["yaml"]), plan.world_size, hidden, cpu=cpu), ctx.out_dir)
    log.info("LLaMA-Factory and DeepSpeed accepted %s%s", files["yaml"].name,
             f" (DeepSpeed ZeRO-{report['deepspeed']['zero_stage']}, train_batch_size "
             f"{report['deepspeed']['train_batch_size']})" if report.get("deepspeed") else "")
    stats = {
        "launched": bool(tcfg.launch), "model": spec.name, "model_name_or_path": model_path,
        "finetuning_type": recipe.finetuning_type(spec, tcfg), "deepspeed": kind, "template": spec.template,
        "is_adapter": recipe.finetuning_type(spec, tcfg) in ("lora", "qlora"),  # model_path holds a PEFT adapter
        "dataset": data.name, "dataset_file": str(data.file), "dataset_sha256": data_sha, "recipe_sha256": rhash,
        "world_size": plan.world_size, "nnodes": int(tcfg.nnodes), "nproc_per_node": nproc, "gpus_visible": gpus,
        "per_device_batch": plan.per_device, "grad_accum": plan.grad_accum, "effective_batch": plan.effective,
        "target_effective_batch": plan.target, "cpu_adaptations": adapted, "report_to": report_to,
        "wandb_group": wandb_env.get("WANDB_RUN_GROUP"), "output_dir": str(output_dir),
    }
    if not tcfg.launch:
        log.info("train.launch=false: configs generated and validated in %s, nothing launched", ctx.out_dir)
        return {"counts": {"train_rows": data.rows}, "stats": stats}

    # Multi-node: every node sees the shared output_dir; only node 0 deletes, the others must not race it.
    for c in stale if int(tcfg.node_rank) == 0 else []:
        log.info("removing checkpoint %s (train.resume=false or incomplete)", c)
        shutil.rmtree(c, ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / MARKER).write_text(json.dumps({"recipe_sha256": rhash, "dataset_sha256": data_sha,
                                                 "model": model_path, "yaml": args}, indent=1, default=str) + "\n",
                                     encoding="utf-8")
    env = launch.launch_env(nproc_per_node=nproc, nnodes=int(tcfg.nnodes), node_rank=int(tcfg.node_rank),
                            master_addr=str(tcfg.master_addr), master_port=tcfg.master_port, cpu=cpu,
                            wandb=wandb_env if report_to == "wandb" else None)
    log.info("launching llamafactory-cli train %s (FORCE_TORCHRUN=1 NNODES=%s NODE_RANK=%s NPROC_PER_NODE=%s%s)%s",
             files["yaml"], env["NNODES"], env["NODE_RANK"], env["NPROC_PER_NODE"],
             " DS_ACCELERATOR=cpu" if cpu else "", f", resuming from {resumed_from}" if resumed_from else "")
    wall = launch.train(files["yaml"], env=env, log_file=ctx.out_dir / "train.log")
    res = launch.results(output_dir)
    _copy_outputs(ctx, output_dir)
    curve = launch.losses(output_dir)
    ctx.add_table("loss", ["step", "loss", "lr", "epoch"], [[c["step"], c["loss"], c["lr"], c["epoch"]] for c in curve])
    log.info("training done in %.0f s: loss %s -> %s over %s steps; model in %s", wall, res["loss_first"],
             res["loss_last"], res["global_step"], output_dir)
    stats.update(res, wall_seconds=round(wall, 2), resumed_from=resumed_from)
    return {"counts": {"train_rows": data.rows, "steps": res["global_step"] or 0}, "stats": stats}


def _wandb(cfg, tcfg, run_dir: Path) -> tuple[str, dict[str, str]]:
    """report_to and the W&B environment of the training run: same project and group as the pipeline's run."""
    logger = cfg.get("logger") or {}
    is_wandb = str(logger.get("_target_", "")).endswith("WandbLogger")
    report_to = tcfg.report_to if tcfg.report_to != "auto" else ("wandb" if is_wandb else "none")
    if report_to != "wandb":
        return report_to, {}
    env = {"WANDB_PROJECT": str(OmegaConf.select(cfg, "logger.project", default=None) or "tacos"),
           "WANDB_RUN_GROUP": str(OmegaConf.select(cfg, "logger.group", default=None) or cfg.run_name),
           "WANDB_MODE": os.environ.get("WANDB_MODE") or str(OmegaConf.select(cfg, "logger.mode", default="offline")),
           "WANDB_DIR": str(run_dir),  # next to the pipeline's own W&B run
           "WANDB_JOB_TYPE": "train"}
    entity = OmegaConf.select(cfg, "logger.entity", default=None)
    if entity:
        env["WANDB_ENTITY"] = str(entity)
    return report_to, env


def _resume_plan(output_dir: Path, rhash: str, resume: bool) -> tuple[str | None, bool, list[Path]]:
    """(checkpoint to resume from, overwrite_output_dir, stale checkpoints to delete); changes nothing itself."""
    from tacos.train.launch import checkpoints

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


def _copy_outputs(ctx, output_dir: Path) -> None:
    for name in _COPIED:
        src = output_dir / name
        if src.is_file():
            shutil.copy2(src, ctx.out_dir / name)
            if name.endswith(".png"):
                ctx.add_plot(ctx.out_dir / name)


def plan(ctx) -> dict:
    """The dry run's forecast: no LLM calls; GPU hours = 6 x params x tokens x epochs / (peak x utilisation). Tokens
    are counted (~4 characters each) when the subset is in the run dir, else budget x train.tokens_per_row."""
    from tacos.stages.common import empty_plan

    cfg, tcfg, spec = ctx.cfg, ctx.component("train"), ctx.component("model")
    source = Path(tcfg.dataset) if tcfg.dataset else ctx.run_dir / _source(cfg)
    tokens, exact_rows = _subset_tokens(source, tcfg.dataset_name)
    if tokens is None:
        from tacos.train import preflight

        rows = OmegaConf.select(cfg, "selection.budget", default=None)
        strategy = OmegaConf.select(cfg, "selection.strategy", default=None)
        if strategy == "external":  # e.g. LIMA: the list's own rows
            rows = len(preflight._load_rows(Path(cfg.selection.path)))
        elif not rows or strategy == "all":
            rows = len(ctx.component("dataset").load(seed=int(cfg.seed)))  # the full pool is trained on
        tokens = int(rows) * int(tcfg.tokens_per_row)
    flops = 6.0 * float(spec.params_b or 0.0) * 1e9 * tokens * float(spec.num_train_epochs)
    gpu_hours = flops / (float(tcfg.gpu_peak_tflops) * 1e12 * float(tcfg.gpu_utilization)) / 3600.0
    # LLM calls: exact (none). GPU hours: always an estimate (FLOP count x assumed utilisation).
    return {**empty_plan(), "gpu_hours": round(gpu_hours, 3), "train_tokens": tokens, "tokens_counted": exact_rows}


def _subset_tokens(source: Path, dataset_name: str | None) -> tuple[int | None, bool]:
    if not (source.is_file() or (source / "manifest.json").is_file()):
        return None, False
    from tacos.train import preflight

    data = preflight.resolve_dataset(source, dataset_name)
    chars = sum(len(json.dumps(row, ensure_ascii=False)) for row in preflight._load_rows(data.file))
    return chars // 4, True
