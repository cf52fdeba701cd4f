"""A GGUF read straight into a transformers model: no converted checkpoint on disk, no float32 copy in memory.

transformers can load a GGUF itself (`from_pretrained(dir, gguf_file=...)`), but every load parses the whole metadata
(151k tokens and merges, ~1 min here), dequantizes each tensor to float32 and maps the file; the old way around it,
a converted bf16 checkpoint, doubled the disk (the GGUF stays: llama.cpp serves it). So the slow part is done once and
cached as small files: the tokenizer, the config and an index of the tensors (name in the model, GGML type, offset,
size). A load then builds the model empty in the target dtype and fills each parameter in row blocks: read the bytes
(plain reads, so the file's pages are not charged to this process), dequantize with the `gguf` package (the same code
transformers uses, so the values are identical), copy into the parameter (the cast to bf16 happens in that copy).

On CPU the input embedding table stays quantized (QuantizedEmbedding): a lookup dequantizes only the rows of the
tokens it is given, to the very values a dequantized table holds. For Qwen2.5-0.5B that table is 136M of the 630M
parameters (its output layer is a separate tensor): 83 MB as Q5_0 instead of 272 MB in bf16.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

INDEX = "gguf_tensors.json"
_BLOCK_BYTES = 16 << 20  # bytes of quantized data read and dequantized at a time (float32 transient: ~4x that)


def metadata_complete(folder: Path) -> bool:
    return (folder / INDEX).is_file()


def write_metadata(gguf: Path, target: Path) -> None:
    """Cache what a load needs besides the weights: tokenizer and config (transformers' own GGUF conversion) and the
    tensor index. Written to a partial folder, then renamed (a crash leaves nothing half-written)."""
    import logging

    from transformers import AutoConfig, AutoTokenizer

    logging.getLogger(__name__).info(
        "reading the tokenizer, config and tensor index of %s into %s (once; ~1 min for the 0.5B)", gguf, target)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(partial))
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config.save_pretrained(str(partial))

    index = tensor_index(gguf, config)
    (partial / INDEX).write_text(json.dumps(index, indent=0))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)


def _read(f, offset: int, n_bytes: int, what: str):
    import numpy as np

    raw = np.empty(n_bytes, np.uint8)
    f.seek(offset)
    if f.readinto(memoryview(raw)) != n_bytes:
        raise RuntimeError(f"{f.name} is shorter than {what} says: delete {what}")
    return raw


def _embedding_class():
    import torch
    from gguf import dequantize

    class QuantizedEmbedding(torch.nn.Module):
        """An embedding table kept as its GGUF rows (uint8 blocks); forward dequantizes the rows looked up."""

        def __init__(self, raw, qtype, dim: int, dtype):
            super().__init__()
            self.register_buffer("raw", torch.from_numpy(raw), persistent=False)
            self.qtype, self.dim, self.dtype = qtype, dim, dtype

        def forward(self, ids):
            rows = self.raw[ids.reshape(-1).cpu()].numpy()
            values = torch.from_numpy(dequantize(rows, self.qtype)).to(self.dtype)
            return values.view(*ids.shape, self.dim).to(self.raw.device)

    return QuantizedEmbedding


def tensor_index(gguf: Path, config) -> dict:
    """Where each parameter of `config`'s model lies in `gguf`: its name there, GGML type, offset and size."""
    import torch
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
    )

    reader = GGUFReader(gguf)
    arch = str(reader.fields["general.architecture"].contents())
    if TENSOR_PROCESSORS.get(arch, TensorProcessor) is not TensorProcessor:
        # llama, qwen2moe, ... permute or split tensors on load: leave those to transformers' own loader
        raise NotImplementedError(f"GGUF architecture {arch!r} needs tensor processing; not supported here")
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    names = get_gguf_hf_weights_map(skeleton, TensorProcessor(config=config.to_dict()))
    params = dict(skeleton.named_parameters())
    tensors = []
    for t in reader.tensors:
        hf = names.get(t.name)
        if hf is None or hf not in params:
            continue
        tensors.append({"gguf": t.name, "name": hf, "type": int(t.tensor_type), "offset": int(t.data_offset),
                        "n_bytes": int(t.n_bytes), "shape": list(params[hf].shape)})
    missing = sorted(set(params) - {t["name"] for t in tensors})
    if missing and not (config.tie_word_embeddings and missing == ["lm_head.weight"]):
        raise RuntimeError(f"{gguf}: no tensor in the file for {missing[:5]}")
    return {"gguf_size": gguf.stat().st_size, "tensors": tensors}


def load_model(meta: Path, gguf: Path, dtype, quantized_embeddings: bool = False):
    """The model of `meta` (write_metadata's folder) with its weights read from `gguf` in `dtype`;
    `quantized_embeddings`: keep the input embedding table quantized (CPU only)."""
    import numpy as np
    import torch
    from gguf import GGMLQuantizationType, dequantize
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    index = json.loads((meta / INDEX).read_text())
    if index["gguf_size"] != gguf.stat().st_size:
        raise RuntimeError(f"{meta} describes another file than {gguf} (size differs): delete {meta}")
    config = AutoConfig.from_pretrained(str(meta))
    with no_init_weights():  # the weights are all overwritten below: no random init, and memory is touched once
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    params = dict(model.named_parameters())
    embedding = next(n for n, p in params.items() if p is model.get_input_embeddings().weight)
    with open(gguf, "rb") as f, torch.no_grad():
        for t in index["tensors"]:
            param = params[t["name"]]
            qtype = GGMLQuantizationType(t["type"])
            if (quantized_embeddings and t["name"] == embedding and not config.tie_word_embeddings
                    and qtype not in (GGMLQuantizationType.F32, GGMLQuantizationType.F16)):
                rows, dim = param.shape
                raw = _read(f, t["offset"], t["n_bytes"], str(meta)).reshape(rows, -1)
                model.set_input_embeddings(_embedding_class()(raw, qtype, dim, dtype))
                continue
            if list(param.shape) != t["shape"]:
                raise RuntimeError(f"{t['gguf']}: shape {t['shape']} in the index, {list(param.shape)} in the model")
            flat = param.view(-1, param.shape[-1]) if param.dim() > 1 else param.view(1, -1)
            rows, row_bytes = flat.shape[0], t["n_bytes"] // flat.shape[0]
            step = max(1, _BLOCK_BYTES // row_bytes)
            for r0 in range(0, rows, step):
                n = min(step, rows - r0)
                raw = _read(f, t["offset"] + r0 * row_bytes, n * row_bytes, str(meta)).reshape(n, row_bytes)
                values = dequantize(raw, qtype)
                flat[r0:r0 + n].copy_(torch.from_numpy(np.ascontiguousarray(values)).view(n, -1))
    if config.tie_word_embeddings:
        model.tie_weights()
    from tacos.memory import trim

    trim()  # the dequantization's float32 blocks: back to the OS, not kept in the heap
    return model
