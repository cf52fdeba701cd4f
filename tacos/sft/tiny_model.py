"""A tiny Llama-architecture model built locally: random weights + a byte-level BPE tokenizer trained on the bundled
Alpaca sample. No hub download; it trains on CPU in seconds through the same LLaMA-Factory + DeepSpeed path as a 7B.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from tacos.paths import REPO_ROOT

log = logging.getLogger(__name__)

# Bump when the recipe below changes: a cached model with another version is rebuilt.
RECIPE_VERSION = 1
MARKER = "tacos_tiny_model.json"
CORPUS = REPO_ROOT / "data" / "sample" / "alpaca_tiny.json"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
ARCH = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "max_position_embeddings": 512}


def is_built(path: Path) -> bool:
    marker = Path(path) / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("recipe_version") == RECIPE_VERSION
    except json.JSONDecodeError:
        return False


def ensure_tiny_llama(path: str | Path, seed: int = 0) -> Path:
    """The tiny model at `path`, built on first use (atomically: concurrent jobs never see a half-written folder)."""
    path = Path(path)
    if is_built(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        _build(tmp, seed)
        if path.exists():  # stale recipe version (or another job won the race): replace it
            if is_built(path):
                return path
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("built the tiny Llama model in %s", path)
    return path


class TinyLlamaBuilder:
    """`model.builder` of model=tiny: the model is built locally (and cached) instead of downloaded."""

    def build(self, folder: Path) -> Path:
        return ensure_tiny_llama(folder)


def _corpus() -> list[str]:
    rows = json.loads(CORPUS.read_text(encoding="utf-8"))
    return [f"{r['instruction']} {r['input']} {r['output']}" for r in rows]


def _build(out: Path, seed: int) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                     pad_token="<pad>", model_max_length=ARCH["max_position_embeddings"])
    hf_tok.save_pretrained(out)
    cfg = LlamaConfig(vocab_size=len(hf_tok), bos_token_id=hf_tok.bos_token_id, eos_token_id=hf_tok.eos_token_id,
                      pad_token_id=hf_tok.pad_token_id, tie_word_embeddings=False, **ARCH)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config.max_length = ARCH["max_position_embeddings"]
    model.save_pretrained(out)
    (out / MARKER).write_text(json.dumps({"recipe_version": RECIPE_VERSION, "seed": seed, **ARCH,
                                          "vocab_size": len(hf_tok)}, indent=1) + "\n", encoding="utf-8")
