"""TransformersLM: log-probabilities of given text from a causal LM run in this process with transformers (CPU torch).

Measured here (2 cores, Qwen2.5-Coder-0.5B, 271 tokens, every position's distribution): transformers bf16 1.1 s,
fp32 2.9 s; llama-cpp-python with logits_all 3.2 s; llama.cpp's server cannot score given tokens at all. Only the
target positions go through the output layer (the 151k-token vocabulary is the costly part).

One copy of the weights on disk: a bundled GGUF (or a .gguf path) is read directly, tensor by tensor, into a bf16
model (tacos.llm.likelihoods.gguf_weights), with no converted checkpoint beside it. What transformers derives slowly from the
GGUF's metadata (the tokenizer, the config, where each tensor lies in the file: ~1 min, once) is cached as a few MB of
JSON under `<model_cache_dir>/transformers/<name>-<sha12>/`. Memory: the weights in `dtype` only (no float32 copy,
no mmap of the file), and the model is dropped when the stage that used it ends (release_loaded()).

`model` is a bundled GGUF name (tacos.llm.serving.local_models.REGISTRY), a .gguf path, or a local transformers model folder.
Nothing is fetched from a hub at run time: a name that is neither fails with what to do.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tacos.llm.likelihoods.likelihood import SpanRequest

log = logging.getLogger(__name__)
DTYPES = ("bfloat16", "float32")
# Loaded models by (checkpoint, dtype, device): every judge that names the same `lm` shares one copy in memory.
_LOADED: dict[tuple[str, str, str], tuple[Any, Any]] = {}
# Target positions sent through the output layer at once: its float32 log-softmax over the 151k-token vocabulary is
# 0.6 MB per position (a 513-token target at once: 310 MB, twice over); 64 at a time costs no measurable time.
_POSITIONS_PER_BLOCK = 64


@dataclass
class TransformersLM:
    model: str = "qwen2.5-coder-0.5b"
    dtype: str = "bfloat16"  # bfloat16: 2.6x faster than float32 on AVX-512 CPUs; the values differ in the 3rd digit
    threads: int | None = None  # torch threads (None: all cores)
    max_target_tokens: int = 512  # longer targets are scored on their first N tokens (marked truncated)
    max_context_tokens: int = 1536  # longer contexts keep their last N tokens
    device: str = "cpu"
    cache_dir: str | None = None  # paths.model_cache_dir (converted checkpoints live under it)
    _loaded: Any = field(default=None, init=False, repr=False)

    # -- identity and checks (nothing is loaded) ----------------------------------------------------------------
    def validate(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"lm.dtype must be one of {DTYPES}, not {self.dtype!r}")
        if self.max_target_tokens < 1 or self.max_context_tokens < 16:
            raise ValueError("lm.max_target_tokens must be >= 1 and lm.max_context_tokens >= 16")
        self._source()  # a model that cannot be found fails now, before any work

    @property
    def identity(self) -> str:
        kind, name, digest = self._source()
        return f"transformers:{name}:{digest[:16]}:{self.dtype}:ctx{self.max_context_tokens}"

    def _source(self) -> tuple[str, str, str]:
        """(kind, display name, content digest) of the weights: gguf (bundled or a file) or a transformers folder."""
        from tacos.llm.serving.local_models import REGISTRY, model_display_name, model_sha256

        if self.model in REGISTRY or self.model.endswith(".gguf"):
            return "gguf", model_display_name(self.model), model_sha256(self.model, self.cache_dir)
        folder = Path(self.model).expanduser()
        if not (folder / "config.json").is_file():
            raise ValueError(
                f"lm.model={self.model!r} is neither a bundled GGUF ({', '.join(REGISTRY)}), a .gguf file nor a local "
                f"transformers model folder (with config.json). Nothing is downloaded at run time: download it once "
                f"(huggingface-cli download NAME --local-dir DIR) and pass the folder.")
        h = hashlib.sha256()
        for f in sorted(folder.glob("*.json")) + sorted(folder.glob("*.safetensors")):
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())  # weights by name + size: hashing GBs at every start is too slow
        return "folder", folder.name, h.hexdigest()

    # -- prompts ------------------------------------------------------------------------------------------------
    def chat_prefix(self, user: str) -> str:
        tok = self._load()[0]
        return tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                       add_generation_prompt=True)

    def bare_prefix(self) -> str:
        """The assistant header alone (what the template adds for a generation): the response's likelihood with no
        instruction, IFD's denominator."""
        tok = self._load()[0]
        turn = [{"role": "user", "content": "x"}]
        with_header = tok.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
        return with_header[len(tok.apply_chat_template(turn, tokenize=False, add_generation_prompt=False)):]

    # -- scoring ------------------------------------------------------------------------------------------------
    def score(self, requests: Sequence[SpanRequest]) -> list[tuple[list[float], float | None, bool]]:
        import torch

        tok, model = self._load()
        end_id = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else tok.eos_token_id
        out = []
        with torch.inference_mode():
            for r in requests:
                ctx = tok(r.context, add_special_tokens=False).input_ids[-self.max_context_tokens:]
                target = tok(r.target, add_special_tokens=False).input_ids
                truncated = len(target) > self.max_target_tokens
                target = target[:self.max_target_tokens]
                scored = target + ([end_id] if r.end and not truncated else [])
                if not ctx or not scored:
                    out.append(([], None, truncated))
                    continue
                ids = torch.tensor([ctx + scored], device=self.device)
                hidden = model.model(ids).last_hidden_state[0, len(ctx) - 1:-1]
                lps = []
                for i in range(0, len(scored), _POSITIONS_PER_BLOCK):  # float32 logits of a block only, not all
                    block = torch.tensor(scored[i:i + _POSITIONS_PER_BLOCK])
                    logp = torch.log_softmax(model.lm_head(hidden[i:i + len(block)]).float(), dim=-1)
                    lps += logp[torch.arange(len(block)), block].tolist()
                end = lps.pop() if r.end and not truncated else None
                out.append((lps, end, truncated))
        from tacos.memory import trim

        trim()  # the activations of the longest request: back to the OS, not kept in the heap
        return out

    def close(self) -> None:
        self._loaded = None  # the shared copy stays in _LOADED until release_loaded()

    # -- loading ------------------------------------------------------------------------------------------------
    def _load(self):
        if self._loaded is None:
            import torch

            if self.threads:
                torch.set_num_threads(int(self.threads))
            kind = self._source()[0]
            key = (str(self._folder()), self.dtype, self.device)
            if key not in _LOADED:
                from tacos.memory import release_encoders

                release_encoders()  # a stage's sentence encoder has done its work by now (the relevance guard runs first)
                folder = self._checkpoint()
                _LOADED[key] = self._load_gguf(folder) if kind == "gguf" else self._load_folder(folder)
            self._loaded = _LOADED[key]
        return self._loaded

    def _load_folder(self, folder: Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, self.dtype))
        return tok, model.to(self.device).eval()

    def _load_gguf(self, meta: Path):
        import time

        import torch
        from transformers import AutoTokenizer

        from tacos.llm.likelihoods.gguf_weights import load_model
        from tacos.llm.serving.local_models import gguf_path

        t0 = time.perf_counter()
        tok = AutoTokenizer.from_pretrained(str(meta))
        model = load_model(meta, gguf_path(self.model, self.cache_dir), getattr(torch, self.dtype),
                           quantized_embeddings=self.device == "cpu")
        log.info("loaded %s (%s) from its GGUF in %.1f s", self.model, self.dtype, time.perf_counter() - t0)
        return tok, model.to(self.device).eval()

    def _folder(self) -> Path:
        """The user's transformers folder, or where the cached metadata of a GGUF lives (nothing is written)."""
        kind, name, digest = self._source()
        if kind == "folder":
            return Path(self.model).expanduser()
        from tacos.llm.serving.local_models import default_cache_dir, gguf_path

        root = Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
        return root / "transformers" / f"{name}-{digest[:12]}"

    def _checkpoint(self) -> Path:
        """The folder to load: the user's transformers folder, or the cached metadata of a GGUF (no weights)."""
        target = self._folder()
        if self._source()[0] == "folder":
            return target
        from tacos.llm.likelihoods.gguf_weights import metadata_complete, write_metadata
        from tacos.llm.serving.local_models import gguf_path

        if metadata_complete(target):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / f".{target.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two processes reading the metadata at once would waste a minute each
            if not metadata_complete(target):
                write_metadata(gguf_path(self.model, self.cache_dir), target)
                _remove_converted_checkpoints(target)
                from tacos.memory import trim

                trim()  # the GGUF metadata parse leaves ~0.3 GB of freed Python objects in the heap
        return target


def _remove_converted_checkpoints(meta: Path) -> None:
    """Earlier versions converted the GGUF into `<name>-<sha12>-<dtype>/` (a second copy of the weights, 1.2 GB for
    the 0.5B): once the GGUF is read directly, those folders are dead weight in our own cache."""
    for old in meta.parent.glob(f"{meta.name}-*"):
        if (old / "model.safetensors").is_file():
            log.info("removing %s: the weights are read from the GGUF now", old)
            shutil.rmtree(old, ignore_errors=True)
            (old.parent / f".{old.name}.lock").unlink(missing_ok=True)


def release_loaded() -> int:
    """Drop every loaded scoring model (called when a stage ends) and give the memory back to the OS; returns how many
    were dropped. A later score() loads again (a few seconds)."""
    n = len(_LOADED)
    _LOADED.clear()
    return n
