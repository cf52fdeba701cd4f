"""Validate generated recipes with LLaMA-Factory's and DeepSpeed's own parsers, before anything is launched.

What is checked, per YAML (nothing is loaded: no tokenizer, no weights, no GPU needed):
1. `llamafactory.hparams.get_train_args(yaml)`: every key known (HfArgumentParser), LLaMA-Factory's cross-checks
   (stage/finetuning/quantization/DeepSpeed combinations, val_size vs eval), transformers' TrainingArguments checks;
   with `deepspeed:` set, TrainingArguments also loads the JSON and runs HfTrainerDeepSpeedConfig
   .trainer_config_process (batch/optimizer "auto" values from the arguments).
2. `llamafactory.data.parser.get_dataset_list`: the dataset_info.json entry parses and its file exists.
3. DeepSpeed: HfTrainerDeepSpeedConfig.trainer_config_finalize (hidden-size "auto" buckets) then
   `deepspeed.runtime.config.DeepSpeedConfig` (pydantic schema: ZeRO stage, unknown keys, offload devices) with
   train_batch_size = world_size x micro x grad-accum checked at the PLANNED world size (not the 1 process here).
It runs in a child process because get_train_args with DeepSpeed insists on a torch.distributed launch: the child
gets a one-process gloo/nccl world (WORLD_SIZE=1, RANK=0) and its own port, and never touches ours.
`cpu=True` validates the recipe as adapted for a machine without GPUs (recipe.adapt_to_cpu: use_cpu, no tf32):
that is how the 7B/13B configs are validated on a CPU box; the adaptations are listed in the report.

    python -m tacos.sft.validate jobs.json report.json      (jobs: [{"yaml", "world_size", "hidden_size", "cpu"}])
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from tacos.llm.serving.process import free_port
from tacos.stage import StageError


@dataclass
class ValidationJob:
    yaml: str
    world_size: int
    hidden_size: int | None
    cpu: bool = False


class RecipeInvalid(StageError):
    """LLaMA-Factory or DeepSpeed rejected a generated recipe."""


def validate_recipes(jobs: list[ValidationJob], work_dir: Path, timeout: float = 600) -> list[dict]:
    """Validate several recipes in one child process (one import of LLaMA-Factory); a report per job."""
    work_dir.mkdir(parents=True, exist_ok=True)
    jobs_file, report_file = work_dir / "validation_jobs.json", work_dir / "validation_report.json"
    jobs_file.write_text(json.dumps([asdict(j) for j in jobs], indent=1), encoding="utf-8")
    report_file.unlink(missing_ok=True)
    # Same PATH as the training launch (this interpreter's bin first): DeepSpeed's JIT ops are keyed by their
    # build command, so a different PATH would rebuild its CPU shm op (~1 min) on every validate/train switch.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "TOKENIZERS_PARALLELISM": "false"}
    env.pop("ALLOW_EXTRA_ARGS", None)  # unknown keys must fail here
    if all(j.cpu for j in jobs):
        env["DS_ACCELERATOR"] = "cpu"
    try:
        proc = subprocess.run([sys.executable, "-m", "tacos.sft.validate", str(jobs_file), str(report_file)],
                              env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              check=False)
    except subprocess.TimeoutExpired as e:
        raise RecipeInvalid(f"config validation did not finish in {timeout:.0f} s") from e
    if proc.returncode != 0 or not report_file.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RecipeInvalid(f"config validation crashed (exit {proc.returncode}):\n{tail}")
    return json.loads(report_file.read_text(encoding="utf-8"))


def validate_recipe(job: ValidationJob, work_dir: Path, timeout: float = 600) -> dict:
    """One recipe; raises RecipeInvalid with LLaMA-Factory's / DeepSpeed's own message when it is rejected."""
    report = validate_recipes([job], work_dir, timeout)[0]
    if not report["ok"]:
        raise RecipeInvalid(f"the generated training config {job.yaml} was rejected by {report['failed_at']}: "
                            f"{report['error']}")
    return report


# -- child process ---------------------------------------------------------------------------------------------------
def _check_one(job: ValidationJob) -> dict:
    import yaml

    from tacos.sft.recipe import adapt_to_cpu

    yaml_path = Path(job.yaml).resolve()
    os.chdir(yaml_path.parent)  # the recipe's dataset_dir / deepspeed paths are relative to its folder
    args = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    adapted = adapt_to_cpu(args, None) if job.cpu else []
    report: dict = {"yaml": str(yaml_path), "ok": False, "cpu_adaptations": adapted, "failed_at": "llamafactory"}
    try:
        from llamafactory.hparams import get_train_args

        model_args, data_args, training_args, ft_args, _ = get_train_args(args)
        report["llamafactory"] = {
            "finetuning_type": ft_args.finetuning_type, "template": data_args.template,
            "cutoff_len": data_args.cutoff_len, "val_size": data_args.val_size,
            "per_device_train_batch_size": training_args.per_device_train_batch_size,
            "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
            "learning_rate": training_args.learning_rate, "num_train_epochs": training_args.num_train_epochs,
            "lr_scheduler_type": str(training_args.lr_scheduler_type.value), "bf16": training_args.bf16,
            "neftune_noise_alpha": training_args.neftune_noise_alpha,
            "quantization_bit": model_args.quantization_bit,
            "resume_from_checkpoint": training_args.resume_from_checkpoint,
        }
        report["failed_at"] = "dataset_info"
        report["datasets"] = _check_datasets(data_args)
        if training_args.deepspeed:
            report["failed_at"] = "deepspeed"
            report["deepspeed"] = _check_deepspeed(training_args, job.world_size, job.hidden_size)
    except BaseException as e:  # noqa: BLE001 — the parsers raise ValueError, AssertionError, pydantic errors
        report["error"] = f"{type(e).__name__}: {e}".strip()
        report["traceback"] = traceback.format_exc(limit=4)
        return report
    report["ok"], report["failed_at"] = True, None
    return report


def _check_datasets(data_args) -> list[dict]:
    from llamafactory.data.parser import get_dataset_list

    out = []
    for name, attr in zip(data_args.dataset, get_dataset_list(data_args.dataset, data_args.dataset_dir)):
        path = Path(data_args.dataset_dir) / attr.dataset_name
        if attr.load_from == "file" and not path.exists():
            raise FileNotFoundError(f"dataset {name!r}: file {path} does not exist")
        out.append({"name": name, "formatting": attr.formatting, "messages": attr.messages,
                    "file": str(path.resolve())})
    return out


class _PlannedWorld:
    """DeepSpeed's `mpu` interface, answering the planned data-parallel world size."""

    def __init__(self, world_size: int):
        self.world_size = world_size

    def get_data_parallel_world_size(self) -> int:
        return self.world_size

    def get_data_parallel_rank(self) -> int:
        return 0


def _check_deepspeed(training_args, world_size: int, hidden_size: int | None) -> dict:
    from types import SimpleNamespace

    import deepspeed
    from deepspeed.runtime.config import DeepSpeedConfig

    deepspeed.init_distributed(auto_mpi_discovery=False)  # reuses the one-process group; lets the mpu answer
    hf = training_args.hf_deepspeed_config  # built by TrainingArguments; trainer_config_process already ran
    if hidden_size is None:
        raise ValueError("the model's hidden_size is unknown (no local config.json and model.hidden_size unset): "
                         "cannot resolve DeepSpeed's hidden-size 'auto' values")
    model = SimpleNamespace(config=SimpleNamespace(hidden_size=int(hidden_size)))
    steps = training_args.max_steps if training_args.max_steps > 0 else 1000
    hf.trainer_config_finalize(training_args, model, steps)
    config = json.loads(json.dumps(hf.config))
    config["train_batch_size"] = (world_size * training_args.per_device_train_batch_size
                                  * training_args.gradient_accumulation_steps)
    ds = DeepSpeedConfig(config, mpu=_PlannedWorld(world_size))
    left = [k for k, v in _leaves(config) if v == "auto"]
    if left:
        raise ValueError(f"DeepSpeed config keeps unresolved 'auto' values: {left}")
    return {"zero_stage": ds.zero_optimization_stage, "train_batch_size": ds.train_batch_size,
            "micro_batch_per_gpu": ds.train_micro_batch_size_per_gpu,
            "gradient_accumulation_steps": ds.gradient_accumulation_steps, "world_size": world_size,
            "offload_optimizer": _device(ds.zero_config.offload_optimizer),
            "offload_param": _device(ds.zero_config.offload_param),
            "bf16": ds.bfloat16_config.enabled,
            "gather_16bit_weights_on_model_save": ds.zero_config.gather_16bit_weights_on_model_save,
            "reduce_bucket_size": _num(ds.zero_config.reduce_bucket_size)}


def _device(offload) -> str | None:
    return None if offload is None else str(getattr(offload.device, "value", offload.device))


def _num(x) -> float | int:
    return int(x) if isinstance(x, (int, float)) and math.isfinite(x) and x == int(x) else x


def _leaves(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix, obj


def main(argv: list[str]) -> int:
    jobs_file, report_file = Path(argv[0]).resolve(), Path(argv[1]).resolve()
    jobs = [ValidationJob(**j) for j in json.loads(jobs_file.read_text(encoding="utf-8"))]
    reports = [_check_one(j) for j in jobs]
    report_file.write_text(json.dumps(reports, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
