"""The loaded answer generators: what `open()` of a generator in tacos.answers.generators returns. Each takes AnswerJobs
and yields (job, answers per turn, tstamp or None for "now") as answers become available; `stats()` and `errors`
(questions left unanswered) are read after the last answer.

The local ones (transformers, vLLM) render every prompt with the checkpoint's own chat template (the one
LLaMA-Factory saved at training), so the model sees at inference what it saw in training: the original chose a
FastChat template by a substring of the model id and got it wrong for most models (method_spec §13, §17.8).
Turn k+1 of a multi-turn question is asked after the model's own answer to turn k.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterator, Sequence

from tqdm.auto import tqdm

from tacos.answers.jobs import AnswerJob
from tacos.llm.calling.types import LLMRequest

# vLLM answers this many questions per batch; the work file is appended after each batch (resume granularity).
VLLM_BATCH = 256
# Part of every openai-backend cache key: the messages are the whole prompt, no prompt file is involved.
OPENAI_PROMPT_HASH = hashlib.sha256(b"tacos.infer: user turns as given, no system message").hexdigest()


def conversation(job: AnswerJob, answers: Sequence[str], turn: int) -> list[dict]:
    """The chat up to user turn `turn` (0-based), with the model's earlier answers."""
    messages = []
    for k in range(turn + 1):
        messages.append({"role": "user", "content": job.turns[k]})
        if k < turn:
            messages.append({"role": "assistant", "content": answers[k]})
    return messages


def load_tokenizer(model_path: Path, chat_template: str | None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if chat_template is not None:
        tokenizer.chat_template = Path(chat_template).read_text(encoding="utf-8")
    if not getattr(tokenizer, "chat_template", None):
        raise RuntimeError(f"{model_path} has no chat template (no chat_template.jinja, none in tokenizer_config.json), "
                           f"so the training prompt format is unknown. Use the folder the train stage wrote (LLaMA-"
                           f"Factory saves the template) or set infer.chat_template=FILE.jinja.")
    return tokenizer


class PromptIds:
    """Chat template -> token ids, left-truncated to leave room for the answer within the context window."""

    def __init__(self, tokenizer, max_len: int | None):
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.truncated = 0

    def __call__(self, messages: list[dict], max_new_tokens: int) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # The template writes BOS itself: adding special tokens again would double it.
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        room = None if self.max_len is None else self.max_len - max_new_tokens
        if room is not None and len(ids) > room > 0:
            # Keep the end: the generation prompt ("[/INST]", "Assistant:") must be the last thing the model reads.
            ids = ids[-room:]
            self.truncated += 1
        return ids


def _context_length(model_path: Path) -> int | None:
    import json

    cfg = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    return cfg.get("max_position_embeddings") or cfg.get("max_sequence_length")


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"infer.generator.device={device} but torch sees no CUDA device (this torch: "
                           f"{torch.__version__}); use infer.generator.device=cpu or auto")
    return device


def _pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


class TransformersBackend:
    """AutoModelForCausalLM.generate, one question at a time (torch.manual_seed(job.seed) before each)."""

    name = "transformers"

    def __init__(self, model_path: Path, chat_template: str | None = None, dtype: str = "auto", device: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM

        self.device = _pick_device(device)
        self.dtype = _pick_dtype(dtype, self.device)
        self.tokenizer = load_tokenizer(model_path, chat_template)
        self.model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=self.dtype).to(self.device).eval()
        self.model.generation_config.max_length = None  # a saved max_length would fight max_new_tokens
        self.prompt_ids = PromptIds(self.tokenizer, _context_length(model_path))
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None \
            else self.tokenizer.eos_token_id
        self.new_tokens = 0
        self.errors: list[str] = []  # questions it could not answer (a local model answers every one)
        self._torch = torch

    def _generate(self, ids: list[int], job: AnswerJob) -> str:
        torch = self._torch
        input_ids = torch.tensor([ids], device=self.device)
        # FastChat's rule: temperature 0 means greedy. top_k stays at transformers' default (50), as in FastChat's run.
        sample = job.temperature > 1e-4
        kwargs: dict[str, Any] = {"do_sample": True, "temperature": job.temperature, "top_p": job.top_p} if sample \
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        with torch.inference_mode():
            out = self.model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                      max_new_tokens=job.max_new_tokens, pad_token_id=self.pad_id, **kwargs)
        new = out[0, input_ids.shape[1]:]
        self.new_tokens += int(new.numel())
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()

    def generate(self, jobs: Sequence[AnswerJob]) -> Iterator[tuple[AnswerJob, list[str], float | None]]:
        for job in tqdm(jobs, desc="infer (transformers)", unit="question", dynamic_ncols=True):
            self._torch.manual_seed(job.seed)
            answers: list[str] = []
            for turn in range(len(job.turns)):
                ids = self.prompt_ids(conversation(job, answers, turn), job.max_new_tokens)
                answers.append(self._generate(ids, job))
            yield job, answers, None

    def stats(self) -> dict:
        return {"device": self.device, "dtype": str(self.dtype).replace("torch.", ""),
                "new_tokens": self.new_tokens, "truncated_prompts": self.prompt_ids.truncated}


class VllmBackend:
    """vLLM's offline LLM class; every request carries its own seed, so answers do not depend on batching."""

    name = "vllm"

    def __init__(self, model_path: Path, chat_template: str | None = None, dtype: str = "auto",
                 options: dict | None = None, seed: int = 0):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise RuntimeError(f"infer/generator=vllm needs the vllm package ({e}); install it in its own env on a GPU "
                               f"machine, or use infer/generator=openai against a vLLM server") from e
        options = dict(options or {})
        self._params = SamplingParams
        self.llm = LLM(model=str(model_path), dtype=dtype, seed=seed, **options)
        self.tokenizer = load_tokenizer(model_path, chat_template)
        self.prompt_ids = PromptIds(self.tokenizer, options.get("max_model_len") or _context_length(model_path))
        self.new_tokens = 0
        self.errors: list[str] = []  # questions it could not answer (a local model answers every one)

    def generate(self, jobs: Sequence[AnswerJob]) -> Iterator[tuple[AnswerJob, list[str], float | None]]:
        bar = tqdm(total=len(jobs), desc="infer (vllm)", unit="question", dynamic_ncols=True)
        for start in range(0, len(jobs), VLLM_BATCH):
            batch = list(jobs[start:start + VLLM_BATCH])
            answers: list[list[str]] = [[] for _ in batch]
            for turn in range(max(len(j.turns) for j in batch)):
                active = [i for i, j in enumerate(batch) if turn < len(j.turns)]
                prompts = [{"prompt_token_ids": self.prompt_ids(conversation(batch[i], answers[i], turn),
                                                                batch[i].max_new_tokens)} for i in active]
                params = [self._params(temperature=batch[i].temperature, top_p=batch[i].top_p,
                                       max_tokens=batch[i].max_new_tokens, seed=batch[i].seed + turn) for i in active]
                for i, out in zip(active, self.llm.generate(prompts, params, use_tqdm=False)):
                    self.new_tokens += len(out.outputs[0].token_ids)
                    answers[i].append(out.outputs[0].text.strip())
            yield from ((job, a, None) for job, a in zip(batch, answers))
            bar.update(len(batch))
        bar.close()

    def stats(self) -> dict:
        return {"new_tokens": self.new_tokens, "truncated_prompts": self.prompt_ids.truncated}


class OpenAIBackend:
    """Any OpenAI-compatible chat endpoint through the run's LLM session (cached, retried, budgeted): the endpoint
    applies its own chat template. Turn k+1 of every question is sent after all turn-k answers are back."""

    name = "openai"

    def __init__(self, session):
        self.session = session
        self.errors: list[str] = []  # questions left unanswered after the client's retries (not cached)
        self.calls = 0

    def generate(self, jobs: Sequence[AnswerJob]) -> Iterator[tuple[AnswerJob, list[str], float | None]]:
        answers: dict[AnswerJob, list[str]] = {j: [] for j in jobs}
        last_key: dict[AnswerJob, str] = {}
        active = list(jobs)
        for turn in range(max((len(j.turns) for j in jobs), default=0)):
            active = [j for j in active if turn < len(j.turns)]
            requests = [endpoint_request(j, answers[j], turn) for j in active]
            results = self.session.run(requests, _as_text, desc=f"infer (turn {turn + 1})")
            self.calls += len(results)
            still = []
            for j, res in zip(active, results):
                if res.status == "ok":
                    answers[j].append(res.parsed)
                    last_key[j] = res.key
                    still.append(j)
                else:  # a transport error: the question is left unanswered (and uncached) for a re-run
                    self.errors.append(f"{j.bench}:{j.question_id}: {res.error or res.status}")
            active = still
        for j in jobs:
            if len(answers[j]) == len(j.turns):
                # The answer's own time (its last call's cache entry): a re-run from the cache writes the same bytes.
                entry = self.session.cache.get(last_key[j])
                yield j, answers[j], entry["created_at"] if entry else None

    def stats(self) -> dict:
        return {"failed_questions": len(self.errors)}


def endpoint_request(job: AnswerJob, answers: Sequence[str], turn: int) -> LLMRequest:
    """The chat call asking user turn `turn` of `job` after the model's earlier `answers` (the label is for logs only,
    not part of the cache key)."""
    return LLMRequest(messages=tuple((m["role"], m["content"]) for m in conversation(job, answers, turn)),
                      prompt_hash=OPENAI_PROMPT_HASH, temperature=job.temperature, top_p=job.top_p,
                      max_tokens=job.max_new_tokens, seed=job.seed, label=f"{job.bench}:{job.question_id}:{turn}")


def _as_text(raw: str) -> str:
    return raw.strip()
