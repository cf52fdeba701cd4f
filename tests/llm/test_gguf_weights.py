"""A GGUF read straight into a transformers model (tacos.llm.likelihoods.gguf_weights) on a tiny random Qwen2 written here: the
weights are the file's dequantized values in bf16, the quantized embedding table looks up the same rows, the cache
holds no weights, and the release after a stage drops the model. The real 0.5B is in test_transformers_lm_real."""
from __future__ import annotations

import gc
import json
import weakref

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter, dequantize, quantize

from tacos.llm.likelihoods import gguf_weights, transformers_lm
from tacos.memory import release_models

# Per GGUF tensor: the type the tiny file stores it in (the bundled Qwen mixes Q5_0, Q8_0, K-quants and F32 alike).
_TYPES = {"token_embd.weight": Q.Q5_0, "output.weight": Q.Q8_0, "blk.0.ffn_down.weight": Q.Q4_0}


def _tiny_qwen(tmp_path):
    """A 2-layer Qwen2 with random weights as a GGUF, and the metadata folder write_metadata would make for it."""
    from transformers import Qwen2Config
    from transformers.modeling_gguf_pytorch_utils import (
        TensorProcessor,
        get_gguf_hf_weights_map,
    )

    config = Qwen2Config(vocab_size=96, hidden_size=256, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    with torch.device("meta"):
        skeleton = transformers.AutoModelForCausalLM.from_config(config)
    to_gguf = {hf: g for g, hf in get_gguf_hf_weights_map(skeleton, TensorProcessor()).items()}
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.gguf"
    writer = GGUFWriter(str(path), "qwen2")
    for hf, p in skeleton.named_parameters():
        values = rng.normal(0, 0.05, tuple(p.shape)).astype(np.float32)
        name = to_gguf[hf]
        qtype = _TYPES.get(name, Q.Q8_0 if p.dim() == 2 else Q.F32)
        if qtype == Q.F32:
            writer.add_tensor(name, values)
        else:
            writer.add_tensor(name, quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    meta = tmp_path / "meta"
    meta.mkdir()
    config.save_pretrained(str(meta))
    (meta / gguf_weights.INDEX).write_text(json.dumps(gguf_weights.tensor_index(path, config)))
    return path, meta, to_gguf


def _file_values(path):
    return {t.name: dequantize(t.data, t.tensor_type).reshape(-1) for t in gguf.GGUFReader(path).tensors}


def test_weights_are_the_files_values_in_bf16(tmp_path):
    path, meta, to_gguf = _tiny_qwen(tmp_path)
    model = gguf_weights.load_model(meta, path, torch.bfloat16)
    assert model.dtype == torch.bfloat16 and not model.config.tie_word_embeddings
    values = _file_values(path)
    for hf, p in model.named_parameters():
        expected = torch.from_numpy(values[to_gguf[hf]].copy()).to(torch.bfloat16)
        assert torch.equal(p.detach().reshape(-1), expected), hf
    assert not list(meta.glob("*.safetensors")) and not list(meta.glob("*.bin"))  # the cache holds no weights


def test_the_quantized_embedding_gives_the_same_model(tmp_path):
    path, meta, _ = _tiny_qwen(tmp_path)
    dense = gguf_weights.load_model(meta, path, torch.bfloat16)
    small = gguf_weights.load_model(meta, path, torch.bfloat16, quantized_embeddings=True)
    assert small.get_input_embeddings().raw.dtype == torch.uint8
    assert small.get_input_embeddings().raw.numel() < dense.get_input_embeddings().weight.numel()  # < 1 byte a value
    ids = torch.tensor([[1, 5, 95, 5, 0, 42]])
    with torch.inference_mode():
        assert torch.equal(small.get_input_embeddings()(ids), dense.get_input_embeddings()(ids))
        assert torch.equal(small(ids).logits, dense(ids).logits)


def test_a_file_that_does_not_match_its_index_is_refused(tmp_path):
    path, meta, _ = _tiny_qwen(tmp_path)
    with open(path, "ab") as f:
        f.write(b"\0" * 32)
    with pytest.raises(RuntimeError, match="describes another file"):
        gguf_weights.load_model(meta, path, torch.bfloat16)


def test_release_after_a_stage_drops_the_loaded_model(tmp_path):
    path, meta, _ = _tiny_qwen(tmp_path)
    model = gguf_weights.load_model(meta, path, torch.bfloat16)
    ref = weakref.ref(model)
    transformers_lm._LOADED[("tiny", "bfloat16", "cpu")] = (None, model)
    del model
    release_models()
    gc.collect()
    assert ref() is None and not transformers_lm._LOADED


def test_a_former_converted_checkpoint_is_removed_once_the_gguf_is_read(tmp_path, monkeypatch):
    lm = transformers_lm.TransformersLM(model="qwen2.5-coder-0.5b", cache_dir=str(tmp_path))
    name = "qwen2.5-coder-0.5b-1d9614638d18"
    old = tmp_path / "transformers" / f"{name}-bfloat16"
    other = tmp_path / "transformers" / "qwen2.5-coder-1.5b-cc324af070c2-bfloat16"  # another model's: kept
    for d in (old, other):
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"x")

    def fake_write(gguf, target):
        target.mkdir()
        (target / gguf_weights.INDEX).write_text("{}")

    monkeypatch.setattr(gguf_weights, "write_metadata", fake_write)
    monkeypatch.setattr("tacos.llm.serving.local_models.gguf_path", lambda *a: tmp_path / "x.gguf")
    assert lm._checkpoint() == tmp_path / "transformers" / name
    assert not old.exists() and other.exists()
