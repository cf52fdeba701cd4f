"""The generated training files: LLaMA-Factory YAML, DeepSpeed JSON, dataset_info.json (pure functions, no torch).

The YAML uses paths relative to the stage folder (dataset_dir ".", the DeepSpeed file by name) so that
`cd <run>/train && llamafactory-cli train train.yaml` reproduces the run; train/README.md maps every key to the paper.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tacos.paths import REPO_ROOT

log = logging.getLogger(__name__)

ASSET_DIR = REPO_ROOT / "train"
YAML_NAME = "train.yaml"
DATASET_INFO = "dataset_info.json"
# Keys that do not change what is trained: excluded from the recipe hash that guards resuming.
_VOLATILE = ("resume_from_checkpoint", "overwrite_output_dir", "report_to", "run_name", "output_dir")


@dataclass(frozen=True)
class BatchPlan:
    """effective batch = world_size x per_device x grad_accum (world_size = nnodes x nproc_per_node)."""

    world_size: int
    per_device: int
    grad_accum: int
    target: int | None  # the model's effective_batch_size (None: grad_accum was fixed)

    @property
    def effective(self) -> int:
        return self.world_size * self.per_device * self.grad_accum


@dataclass(frozen=True)
class DatasetRef:
    """One training set and its LLaMA-Factory dataset_info.json entry (file_name absolute)."""

    name: str
    file: Path
    entry: dict
    rows: int


def batch_plan(spec, world_size: int) -> BatchPlan:
    """Gradient accumulation that keeps the model's effective batch (256 in the paper) on `world_size` processes."""
    per_device = int(spec.per_device_train_batch_size)
    target = spec.effective_batch_size
    if target is None:
        return BatchPlan(world_size, per_device, int(spec.gradient_accumulation_steps), None)
    per_step = world_size * per_device
    grad_accum = max(1, round(int(target) / per_step))
    plan = BatchPlan(world_size, per_device, grad_accum, int(target))
    if plan.effective != int(target):
        log.warning("effective batch %d is not a multiple of %d processes x %d per device: using grad-accum %d "
                    "-> effective batch %d", target, world_size, per_device, grad_accum, plan.effective)
    return plan


def finetuning_type(spec, tcfg) -> str:
    return tcfg.finetuning_type or spec.finetuning_type


def deepspeed_kind(spec, tcfg) -> str:
    return tcfg.deepspeed or spec.deepspeed


def deepspeed_template(kind: str) -> Path | None:
    """The file of the DeepSpeed JSON template train/ds_<kind>.json; None for 'none'."""
    return None if kind == "none" else ASSET_DIR / f"ds_{kind}.json"


def deepspeed_config(kind: str) -> dict | None:
    """The DeepSpeed JSON template train/ds_<kind>.json (ZeRO-3, optionally with CPU offload); None for 'none'."""
    path = deepspeed_template(kind)
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"DeepSpeed template {path} not found (train.deepspeed={kind!r}; templates: "
                                f"{sorted(p.stem[3:] for p in ASSET_DIR.glob('ds_*.json'))})")
    return json.loads(path.read_text(encoding="utf-8"))


def llamafactory_args(spec, tcfg, *, model_path: str, data: DatasetRef, output_dir: Path, plan: BatchPlan,
                      deepspeed_file: str | None, run_name: str, report_to: str, seed: int) -> dict[str, Any]:
    """The LLaMA-Factory SFT arguments for `spec`'s recipe (model group) and `tcfg`'s launch settings."""
    ft = finetuning_type(spec, tcfg)
    args: dict[str, Any] = {
        "stage": "sft",
        "do_train": True,
        "model_name_or_path": model_path,
        "trust_remote_code": False,
        "finetuning_type": "lora" if ft == "qlora" else ft,
        "template": spec.template,
        "dataset": data.name,
        "dataset_dir": ".",
        "cutoff_len": int(spec.cutoff_len),  # explicit: the original's `max_length` key was ignored (§17.7)
        "val_size": float(tcfg.val_size),    # 0: the original's hidden 10% hold-out is gone unless asked for
        "output_dir": str(output_dir),
        "overwrite_output_dir": False,
        "save_strategy": tcfg.save_strategy,
        "save_total_limit": int(tcfg.save_total_limit),
        "save_only_model": False,            # optimizer state is needed to resume
        "logging_steps": 1,
        "plot_loss": True,
        "per_device_train_batch_size": plan.per_device,
        "gradient_accumulation_steps": plan.grad_accum,
        "learning_rate": float(spec.learning_rate),
        "num_train_epochs": float(spec.num_train_epochs),
        "lr_scheduler_type": spec.lr_scheduler_type,
        "warmup_steps": int(spec.warmup_steps),
        "weight_decay": float(spec.weight_decay),
        "optim": spec.optim,
        "adam_beta1": float(spec.adam_beta1),
        "adam_beta2": float(spec.adam_beta2),
        "bf16": bool(spec.bf16),
        "disable_gradient_checkpointing": not spec.gradient_checkpointing,
        "ddp_timeout": 180000000,            # long tokenisation on rank 0 must not time out the other ranks
        "report_to": report_to,
        "run_name": run_name,
        "seed": int(seed),
    }
    if spec.neftune_noise_alpha is not None:
        args["neftune_noise_alpha"] = float(spec.neftune_noise_alpha)
    if spec.tf32 is not None:
        args["tf32"] = bool(spec.tf32)
    if deepspeed_file:
        args["deepspeed"] = deepspeed_file
    if tcfg.max_steps is not None:
        args["max_steps"] = int(tcfg.max_steps)
    if ft in ("lora", "qlora"):
        args.update(lora_rank=int(tcfg.lora_rank), lora_alpha=int(tcfg.lora_alpha),
                    lora_dropout=float(tcfg.lora_dropout), lora_target=str(tcfg.lora_target))
    if ft == "qlora":
        args.update(quantization_bit=4, quantization_method="bnb")
    if float(tcfg.val_size) > 0:
        args.update(eval_strategy="epoch" if tcfg.save_strategy in ("epoch", "no") else tcfg.save_strategy,
                    per_device_eval_batch_size=plan.per_device)
    args.update(dict(tcfg.extra_args or {}))
    return args


def adapt_to_cpu(args: dict, ds: dict | None) -> list[str]:
    """Make a recipe runnable where torch sees no GPU (in place); returns what was changed, for the log."""
    changes = []
    if not args.get("use_cpu"):
        args["use_cpu"] = True
        changes.append("use_cpu: true")
    if args.pop("tf32", None) is not None:
        changes.append("tf32 dropped (needs an Ampere GPU)")
    zero = (ds or {}).get("zero_optimization", {})
    for key in ("offload_optimizer", "offload_param"):
        if zero.get(key, {}).get("pin_memory"):
            zero[key]["pin_memory"] = False
            changes.append(f"deepspeed {key}.pin_memory: false (no CUDA to pin for)")
    return changes


def dataset_info(data: DatasetRef) -> dict:
    return {data.name: data.entry}


def recipe_hash(args: dict, ds: dict | None, data_sha256: str) -> str:
    """Identity of what is trained (not where/how it is logged): a checkpoint of another recipe is never resumed."""
    core = {k: v for k, v in args.items() if k not in _VOLATILE}
    blob = json.dumps({"args": core, "deepspeed": ds, "data": data_sha256}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def write_recipe(folder: Path, args: dict, ds: dict | None, data: DatasetRef) -> dict[str, Path]:
    """train.yaml (+ ds_config.json) + dataset_info.json into `folder`; args['deepspeed'] must name the JSON file."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    if ds is not None:
        files["deepspeed"] = folder / args["deepspeed"]
        files["deepspeed"].write_text(json.dumps(ds, indent=2) + "\n", encoding="utf-8")
    files["dataset_info"] = folder / DATASET_INFO
    files["dataset_info"].write_text(json.dumps(dataset_info(data), indent=2) + "\n", encoding="utf-8")
    files["yaml"] = folder / YAML_NAME
    header = ("# Generated by the TACOS `train` stage (tacos/sft/recipe.py); train/README.md maps each key to the "
              "paper.\n# Reproduce: cd <this folder> && llamafactory-cli train train.yaml   (FORCE_TORCHRUN=1 "
              "NPROC_PER_NODE=... for DeepSpeed)\n")
    files["yaml"].write_text(header + yaml.safe_dump(args, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return files
