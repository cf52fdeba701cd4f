"""The two config groups the `train` stage reads: `model` (ModelSpec: the base model and its SFT recipe, conf/model/)
and `train` (TrainConfig: which data, where the model goes, how training is launched, conf/train/)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tacos.paths import absolute


@dataclass
class ModelSpec:
    """One base model and its SFT recipe (LLaMA-Factory + DeepSpeed ZeRO-3; method_spec §12, mistakes fixed).

    The batch is set by `effective_batch_size` (= GPUs x per-device x grad-accum): the train stage derives the
    gradient accumulation from it and the GPU count. With `effective_batch_size: null` the fixed
    `gradient_accumulation_steps` is used as is.
    """

    name: str
    model_name_or_path: str
    template: str
    finetuning_type: str = "full"
    learning_rate: float = 1e-5
    num_train_epochs: float = 15
    per_device_train_batch_size: int = 2
    gradient_accumulation_steps: int = 16
    cutoff_len: int = 2048
    neftune_noise_alpha: float | None = 15
    bf16: bool = True
    gpus_required: int = 8
    effective_batch_size: int | None = None
    lr_scheduler_type: str = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    optim: str = "adamw_torch"
    tf32: bool | None = None
    gradient_checkpointing: bool = True
    deepspeed: str = "z3_offload"       # the default of train.deepspeed: z3 | z3_offload | none
    hidden_size: int | None = None      # resolves DeepSpeed "auto" buckets when validating without the weights
    builder: Any = None                 # an object whose build(folder) makes the model locally, under
                                        # ${paths.output_dir}/models/ (e.g. tacos.sft.tiny_model.TinyLlamaBuilder);
                                        # null: model_name_or_path is a local folder or a hub id
    params_b: float | None = None       # parameters in billions: the dry run's GPU-hour forecast (6 x params x tokens)

    def validate(self) -> None:
        if self.builder is not None and not callable(getattr(self.builder, "build", None)):
            raise ValueError(f"model.builder must be null or a builder object with build(folder), e.g. "
                             f"{{_target_: tacos.sft.tiny_model.TinyLlamaBuilder}}; got {self.builder!r}")


DEEPSPEED_CHOICES = ("z3", "z3_offload", "none")
FINETUNING_CHOICES = ("full", "lora", "qlora")
REPORT_CHOICES = ("auto", "wandb", "none")


# TrainConfig fields that say where or how a run is launched, not what is trained: not part of a training's identity.
NOT_IDENTITY = ("master_addr", "master_port", "node_rank", "resume", "allow_cpu")


@dataclass
class TrainConfig:
    """The `train` config group: where the data comes from, where the model goes, and how it is launched."""

    dataset: str | None = None          # export folder or ShareGPT/Alpaca JSON file; null: this run's refine/export
    dataset_name: str | None = None     # entry of the folder's dataset_info.json; null: its first ShareGPT entry
    output_dir: str | None = None       # checkpoints + final model; null: <run_dir>/train_output
    deepspeed: str | None = None        # z3 | z3_offload | none; null: the model's (paper: z3_offload)
    finetuning_type: str | None = None  # full | lora | qlora; null: the model's (paper: full)
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target: str = "all"
    nproc_per_node: int | None = None   # processes (GPUs) per node; null: all visible GPUs (1 on CPU)
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int | None = None      # null: a free port (single node only)
    max_steps: int | None = None        # null: train the model's num_train_epochs
    val_size: float = 0.0               # the original silently held out 10%; 0 = train on the whole subset
    save_strategy: str = "epoch"        # checkpoints to resume from (the paper saved none: save_strategy no)
    save_total_limit: int = 1           # keep only the newest checkpoint (a 7B ZeRO-3 checkpoint is ~100 GB)
    report_to: str = "auto"             # auto: wandb when logger=wandb | wandb | none
    resume: bool = True                 # resume from the newest checkpoint of the same recipe in output_dir
    allow_cpu: bool = False             # experts: run a GPU-sized model although torch sees too few GPUs
    launch: bool = True                 # false: generate + validate the configs only (e.g. on a login node)
    gpu_peak_tflops: float = 312.0      # dry-run GPU-hour forecast: peak bf16 FLOP/s of one GPU ...
    gpu_utilization: float = 0.3        # ... and the fraction of it training reaches
    tokens_per_row: int = 400           # tokens per row when the subset is not exported yet
    extra_args: dict[str, Any] = field(default_factory=dict)  # merged last into the LLaMA-Factory YAML

    def __post_init__(self) -> None:
        # values read from the environment (train.node_rank=${oc.env:SLURM_NODEID} on a SLURM node) arrive as strings
        for name in ("nproc_per_node", "nnodes", "node_rank", "master_port"):
            value = getattr(self, name)
            if isinstance(value, str) and value.strip().isdigit():
                setattr(self, name, int(value))
        # LLaMA-Factory runs in the stage folder: a path relative to our working directory would point elsewhere there
        for name in ("dataset", "output_dir"):
            if getattr(self, name):
                setattr(self, name, str(absolute(getattr(self, name))))

    def reports_to(self, logger_report_to: str) -> str:
        """report_to of the LLaMA-Factory run: `auto` follows the pipeline's logger (its training_report_to())."""
        return logger_report_to if self.report_to == "auto" else self.report_to

    def validate(self) -> None:
        if self.deepspeed is not None and self.deepspeed not in DEEPSPEED_CHOICES:
            raise ValueError(f"train.deepspeed must be one of {DEEPSPEED_CHOICES} or null, not {self.deepspeed!r}")
        if self.finetuning_type is not None and self.finetuning_type not in FINETUNING_CHOICES:
            raise ValueError(f"train.finetuning_type must be one of {FINETUNING_CHOICES} or null, "
                             f"not {self.finetuning_type!r}")
        if self.report_to not in REPORT_CHOICES:
            raise ValueError(f"train.report_to must be one of {REPORT_CHOICES}, not {self.report_to!r}")
        if not 0.0 <= float(self.val_size) < 1.0:
            raise ValueError(f"train.val_size must be in [0, 1), not {self.val_size}")
        if self.nproc_per_node is not None and int(self.nproc_per_node) < 1:
            raise ValueError(f"train.nproc_per_node must be >= 1 or null, not {self.nproc_per_node}")
        if int(self.nnodes) < 1 or not 0 <= int(self.node_rank) < int(self.nnodes):
            raise ValueError(f"train.node_rank must be in [0, nnodes): node_rank={self.node_rank}, nnodes={self.nnodes}")
        if int(self.nnodes) > 1 and (self.master_port is None or self.master_addr in ("127.0.0.1", "localhost")):
            raise ValueError("multi-node training needs train.master_addr (the rank-0 node's address, reachable from "
                             "every node) and a fixed train.master_port")
        if int(self.nnodes) > 1 and not (self.output_dir and self.dataset):
            # every node runs the stage in its own run dir: the default <run_dir>/train_output would split the ZeRO-3
            # checkpoint shards over the nodes (no resume), and <run_dir>/export exists on none of them
            raise ValueError("multi-node training needs train.output_dir and train.dataset on a filesystem every node "
                             "shares: each node runs the train stage in its own run dir, every rank writes its ZeRO-3 "
                             "shards to output_dir and every node resumes from there")
        if self.max_steps is not None and int(self.max_steps) < 1:
            raise ValueError(f"train.max_steps must be >= 1 or null, not {self.max_steps}")
