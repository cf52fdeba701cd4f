"""Light specs for the `model` and `judge` config groups (training and evaluation read them)."""
from __future__ import annotations

from dataclasses import dataclass, field


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
    builder: str | None = None          # "tiny_llama": built locally under ${paths.output_dir}/models/
    params_b: float | None = None       # parameters in billions: the dry run's GPU-hour forecast (6 x params x tokens)


@dataclass
class JudgeSpec:
    """How the `judge` stage grades our model's answers (tacos/stages/judge.py, evaluate/README.md).

    kind: pairwise (our answers vs each baseline's on `test_sets`, both orders), mt_bench (FastChat single-answer
    grading of our MT-Bench answers) or all (both, in one stage folder).
    """

    name: str
    kind: str  # pairwise | mt_bench | all
    test_sets: list[str] = field(default_factory=list)  # pairwise test sets
    # Baseline answers: FastChat answer files, folders of <bench>/<model_id>.jsonl, or run dirs with infer/.
    baselines: list[str] = field(default_factory=list)
    system_prompt: str = "judge_pairwise_system.txt"
    prompt: str = "judge_pairwise.txt"
    model_id: str | None = None  # our answer file in <run>/infer/model_answer/<bench>/; None: the only one there
    # Where bare baseline names are looked up: <answers_dir>/<name>/<bench>/*.jsonl (the infer stage registers
    # every run's answers there under its run name, and the base model's under `base`).
    answers_dir: str | None = None
    missing_baselines: str = "skip"  # a bare name not registered yet: skip (logged, listed in the manifest) | error
    judge_model_name: str = "gpt-4"  # written into FastChat judgment files (show_result filters on it)
    limit: int | None = None  # judge only the first N questions of every test set (CPU runs)
    temperature: float = 0.0
    max_tokens: int = 512  # pairwise calls (the reference: 512)
    mt_bench_max_tokens: int = 2048  # MT-Bench calls (FastChat: 2048)
    n_boot: int = 1000  # bootstrap resamples for the pairwise score CI

    def validate(self) -> None:
        from tacos.data.test_sets import TEST_SETS
        from tacos.stages.common import prompts_hash

        if self.kind not in ("pairwise", "mt_bench", "all"):
            raise ValueError(f"judge.kind must be pairwise, mt_bench or all, not {self.kind!r}")
        unknown = [t for t in self.test_sets if t not in TEST_SETS]
        if unknown:
            raise ValueError(f"judge.test_sets: unknown {unknown}; valid: {list(TEST_SETS)}")
        if self.kind != "mt_bench":
            if not self.test_sets:
                raise ValueError("judge.test_sets is empty: name at least one of " + ", ".join(TEST_SETS))
            prompts_hash(self.system_prompt, self.prompt)  # a missing prompt file fails here, before any work
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"judge.limit must be a positive number of questions or null, got {self.limit}")
        if min(self.max_tokens, self.mt_bench_max_tokens) < 1 or self.n_boot < 1:
            raise ValueError("judge.max_tokens, judge.mt_bench_max_tokens and judge.n_boot must be >= 1")
        if self.missing_baselines not in ("skip", "error"):
            raise ValueError(f"judge.missing_baselines must be skip or error, not {self.missing_baselines!r}")
        if not self.judge_model_name:
            raise ValueError("judge.judge_model_name must not be empty (FastChat's show_result selects on it)")
