"""Stage `train`: SFT of `model` on the exported subset with LLaMA-Factory + DeepSpeed ZeRO-3 (tacos.sft).

Order (every check before anything is downloaded or launched): data -> GPUs -> base model -> recipe files ->
validation by LLaMA-Factory's and DeepSpeed's parsers -> `llamafactory-cli train` (torchrun) -> losses/checkpoint.
The checkpoints and the final model live in train.output_dir (default <run_dir>/train_output), outside the stage
folder, so a killed run keeps them and re-running resumes from the newest checkpoint of the same recipe.
The stage folder holds train.yaml, ds_<kind>.json, dataset_info.json, validation_report.json, train.log and copies
of trainer_state.json / trainer_log.jsonl / train_results.json / training_loss.png.
Every path handed to LLaMA-Factory is absolute (it runs in the stage folder), except the recipe's own files, which
are named relative to that folder so that `cd <run>/train && llamafactory-cli train train.yaml` reproduces the run.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from tacos.config import to_container
from tacos.paths import absolute
from tacos.records import file_sha256
from tacos.sft import forecast, launch, outputs, preflight, recipe
from tacos.sft.validate import ValidationJob, validate_recipe
from tacos.stage import StageBase, StageError, StageResult, component, empty_plan, files_read

log = logging.getLogger(__name__)

_NOT_IDENTITY = ("master_addr", "master_port", "node_rank", "resume", "allow_cpu")
_COPIED = ("trainer_state.json", "trainer_log.jsonl", "train_results.json", "training_loss.png")


class TrainStage(StageBase):
    name, components = "train", ("train", "model")

    def source(self, cfg) -> str | None:
        """The stage whose subset is trained on (the refined one when this run refines, else the export); None when
        train.dataset names it."""
        if cfg.train.dataset:
            return None
        return "refine" if "refine" in cfg.stages else "export"

    def requires(self, cfg) -> list[str]:
        return [self.source(cfg)] if self.source(cfg) else []

    def config_slice(self, cfg) -> dict:
        train = {k: v for k, v in to_container(cfg.train).items() if k not in _NOT_IDENTITY}
        slice_ = {"train": train, "model": to_container(cfg.model), "seed": int(cfg.seed)}
        if cfg.train.dataset:  # an outside file is not covered by the runner's input hashes: hash it here
            try:
                data = preflight.resolve_dataset(absolute(cfg.train.dataset), cfg.train.dataset_name)
                slice_["dataset_sha256"] = file_sha256(data.file)
            except StageError:
                slice_["dataset_sha256"] = None  # run() reports the problem
        template = recipe.deepspeed_template(recipe.deepspeed_kind(component(cfg, "model"), component(cfg, "train")))
        if template is not None:  # the DeepSpeed template's bytes go into the recipe: an edit must re-train
            slice_["deepspeed_template"] = files_read({template.name: template})
        return slice_

    def run(self, ctx) -> StageResult:
        cfg, tcfg, spec = ctx.cfg, ctx.component("train"), ctx.component("model")
        preflight.check_train_extra()
        data = preflight.resolve_dataset(Path(tcfg.dataset) if tcfg.dataset else ctx.input_dir(self.source(cfg)),
                                         tcfg.dataset_name)
        gpus = preflight.visible_gpus()
        if tcfg.launch:
            preflight.check_gpus(spec, tcfg, gpus)
        nproc = preflight.processes_per_node(tcfg, gpus)
        plan = recipe.batch_plan(spec, nproc * int(tcfg.nnodes))
        log.info("batch: %d node(s) x %d process(es) x %d per device x grad-accum %d = effective batch %d%s",
                 tcfg.nnodes, nproc, plan.per_device, plan.grad_accum, plan.effective,
                 f" (target {plan.target})" if plan.target else " (fixed grad-accum)")
        # ctx.paths and TrainConfig's paths are absolute: LLaMA-Factory resolves them in another working directory
        model_path, hidden = preflight.resolve_model(spec, Path(ctx.paths.output_dir) / "models", required=tcfg.launch)
        output_dir = Path(tcfg.output_dir or ctx.run_dir / "train_output").resolve()
        kind = recipe.deepspeed_kind(spec, tcfg)
        ds = recipe.deepspeed_config(kind)
        report_to = tcfg.reports_to(ctx.component("logger").training_report_to())
        wandb = self.wandb_env(cfg, ctx.run_dir) if report_to == "wandb" else {}
        args = recipe.llamafactory_args(spec, tcfg, model_path=model_path, data=data, output_dir=output_dir, plan=plan,
                                        deepspeed_file=f"ds_{kind}.json" if ds else None, report_to=report_to,
                                        run_name=f"train-{spec.name}-{cfg.run_name}", seed=ctx.seed)
        cpu = gpus == 0
        adapted = recipe.adapt_to_cpu(args, ds) if cpu and tcfg.launch else []
        if adapted:
            log.info("no GPU: recipe adapted for CPU (%s)", "; ".join(adapted))
        data_sha = preflight.dataset_sha256(data)
        rhash = recipe.recipe_hash(args, ds, data_sha)
        resumed_from, overwrite, stale = (outputs.resume_plan(output_dir, rhash, tcfg.resume) if tcfg.launch
                                          else (None, False, []))
        if resumed_from:
            args["resume_from_checkpoint"] = resumed_from
        if overwrite:
            args["overwrite_output_dir"] = True
        files = recipe.write_recipe(ctx.out_dir, args, ds, data)
        report = validate_recipe(ValidationJob(str(files["yaml"]), plan.world_size, hidden, cpu=cpu), ctx.out_dir)
        log.info("LLaMA-Factory and DeepSpeed accepted %s%s", files["yaml"].name,
                 f" (DeepSpeed ZeRO-{report['deepspeed']['zero_stage']}, train_batch_size "
                 f"{report['deepspeed']['train_batch_size']})" if report.get("deepspeed") else "")
        ft = recipe.finetuning_type(spec, tcfg)
        stats = {
            "launched": bool(tcfg.launch), "model": spec.name, "model_name_or_path": model_path,
            "finetuning_type": ft, "deepspeed": kind, "template": spec.template,
            "is_adapter": ft in ("lora", "qlora"),  # model_path holds a PEFT adapter
            "dataset": data.name, "dataset_file": str(data.file), "dataset_sha256": data_sha, "recipe_sha256": rhash,
            "world_size": plan.world_size, "nnodes": int(tcfg.nnodes), "nproc_per_node": nproc, "gpus_visible": gpus,
            "per_device_batch": plan.per_device, "grad_accum": plan.grad_accum, "effective_batch": plan.effective,
            "target_effective_batch": plan.target, "cpu_adaptations": adapted, "report_to": report_to,
            "wandb_group": wandb.get("WANDB_RUN_GROUP"), "output_dir": str(output_dir),
        }
        if not tcfg.launch:
            log.info("train.launch=false: configs generated and validated in %s, nothing launched", ctx.out_dir)
            return StageResult(counts={"train_rows": data.rows}, stats=stats)

        outputs.prepare(output_dir, stale, {"recipe_sha256": rhash, "dataset_sha256": data_sha, "model": model_path,
                                            "yaml": args}, remove_stale=int(tcfg.node_rank) == 0)
        env = launch.launch_env(nproc_per_node=nproc, nnodes=int(tcfg.nnodes), node_rank=int(tcfg.node_rank),
                                master_addr=str(tcfg.master_addr), master_port=tcfg.master_port, cpu=cpu,
                                wandb=wandb or None)
        log.info("launching llamafactory-cli train %s (FORCE_TORCHRUN=1 NNODES=%s NODE_RANK=%s NPROC_PER_NODE=%s%s)%s",
                 files["yaml"], env["NNODES"], env["NODE_RANK"], env["NPROC_PER_NODE"],
                 " DS_ACCELERATOR=cpu" if cpu else "", f", resuming from {resumed_from}" if resumed_from else "")
        wall = launch.train(files["yaml"], env=env, log_file=ctx.out_dir / "train.log")
        res = outputs.results(output_dir)
        for name in _COPIED:
            if (output_dir / name).is_file():
                shutil.copy2(output_dir / name, ctx.out_dir / name)
                if name.endswith(".png"):
                    ctx.add_plot(ctx.out_dir / name)
        curve = outputs.losses(output_dir)
        ctx.add_table("loss", ["step", "loss", "lr", "epoch"], [[c["step"], c["loss"], c["lr"], c["epoch"]] for c in curve])
        log.info("training done in %.0f s: loss %s -> %s over %s steps; model in %s", wall, res["loss_first"],
                 res["loss_last"], res["global_step"], output_dir)
        stats.update(res, wall_seconds=round(wall, 2), resumed_from=resumed_from)
        return StageResult(counts={"train_rows": data.rows, "steps": res["global_step"] or 0}, stats=stats)

    def wandb_env(self, cfg, run_dir: Path) -> dict[str, str]:
        """The training run's W&B settings: the pipeline run's project, group and mode (the logger config)."""
        return launch.wandb_env(project=str(OmegaConf.select(cfg, "logger.project", default=None) or "tacos"),
                                group=str(OmegaConf.select(cfg, "logger.group", default=None) or cfg.run_name),
                                mode=str(OmegaConf.select(cfg, "logger.mode", default="offline")),
                                entity=OmegaConf.select(cfg, "logger.entity", default=None),
                                run_dir=absolute(run_dir))

    def plan(self, ctx) -> dict:
        """The dry run's forecast: no LLM calls; GPU hours (always an estimate, tacos.sft.forecast). Tokens are counted
        when the subset is in the run dir, else budget x train.tokens_per_row."""
        tcfg, spec = ctx.component("train"), ctx.component("model")
        tokens = forecast.subset_tokens(Path(tcfg.dataset) if tcfg.dataset else ctx.run_dir / self.source(ctx.cfg),
                                        tcfg.dataset_name)
        counted = tokens is not None
        if not counted:
            selector = ctx.component("selection")
            rows = selector.budget
            if not selector.inputs:  # an external list (e.g. LIMA): its own rows
                rows = len(preflight.load_rows(absolute(selector.path)))
            elif not rows:
                rows = len(ctx.component("dataset").load(seed=ctx.seed))  # the full pool is trained on
            tokens = int(rows) * int(tcfg.tokens_per_row)
        return {**empty_plan(), "gpu_hours": round(forecast.gpu_hours(spec, tcfg, tokens), 3), "train_tokens": tokens,
                "tokens_counted": counted}


STAGE = TrainStage()
