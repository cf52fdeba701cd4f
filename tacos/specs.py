"""Light specs for the `model` and `judge` config groups (training and evaluation read them)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelSpec:
    """One base model and its SFT recipe (LLaMA-Factory + DeepSpeed ZeRO-3)."""

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


@dataclass
class JudgeSpec:
    """How answers are judged: pairwise on the 5 test sets, or MT-Bench single-answer grading."""

    name: str
    kind: str  # pairwise | mt_bench
    prompt: str
    test_sets: list[str] = field(default_factory=list)
    baselines: list[str] = field(default_factory=list)
    temperature: float = 0.0
    max_tokens: int = 512
