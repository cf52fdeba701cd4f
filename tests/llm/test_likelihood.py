"""Log-probabilities of given text: the cached client, the echo backend (an OpenAI-compatible /v1/completions that
echoes prompt log-probabilities, as vLLM does) read by text offsets, and the transformers backend's checks (no load)."""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))
from fake_lm import FakeLM  # noqa: E402

from tacos.llm.calling.cache import CallCache  # noqa: E402
from tacos.llm.likelihoods.echo_lm import CompletionsEchoLM  # noqa: E402
from tacos.llm.likelihoods.likelihood import LikelihoodClient, SpanRequest  # noqa: E402
from tacos.llm.likelihoods.transformers_lm import TransformersLM  # noqa: E402


def test_the_client_caches_and_counts(tmp_path):
    lm = FakeLM(cond={"a b c": -0.5})
    with CallCache(tmp_path) as cache:
        client = LikelihoodClient(lm, cache, progress=False)
        req = [SpanRequest(lm.chat_prefix("x"), "a b c"), SpanRequest(lm.chat_prefix("x"), "a b c")]
        first = client.run(req)
        assert lm.calls == 1 and first[0].mean_logprob == pytest.approx(-0.5) and first[0].end_logprob == -0.1
        again = LikelihoodClient(lm, cache, progress=False).run(req[:1])
        assert lm.calls == 1 and again[0].cached and again[0].token_logprobs == first[0].token_logprobs


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body["echo"] and body["logprobs"] == 1
        prompt = body["prompt"]
        tokens, offsets, pos = [], [], 0
        for piece in prompt.replace("<|im_end|>", " <|im_end|>").split(" "):
            tokens.append(piece)
            offsets.append(prompt.find(piece, pos))
            pos = offsets[-1] + len(piece)
        logprobs = [None] + [-float(len(t)) / 10 for t in tokens[1:]]
        out = {"id": "x", "object": "text_completion", "created": 0, "model": body["model"],
               "choices": [{"index": 0, "text": prompt + "!", "finish_reason": "length",
                            "logprobs": {"tokens": tokens, "token_logprobs": logprobs, "text_offset": offsets,
                                         "top_logprobs": None}}]}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_the_echo_backend_reads_the_target_by_text_offsets():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lm = CompletionsEchoLM(base_url=f"http://127.0.0.1:{server.server_port}/v1", model="m")
        [(lps, end, truncated)] = lm.score([SpanRequest("ctx is here", " blue sky", end=True)])
        assert lps == pytest.approx([-0.4, -0.3]) and end == pytest.approx(-1.0) and not truncated
        assert lm.chat_prefix("Q") == "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    finally:
        server.shutdown()


def test_the_transformers_backend_is_checked_before_any_load(tmp_path):
    lm = TransformersLM(model="qwen2.5-coder-0.5b", cache_dir=str(tmp_path))
    assert lm.identity.startswith("transformers:qwen2.5-coder-0.5b:1d9614638d18024d:bfloat16")
    with pytest.raises(ValueError, match="Nothing is downloaded at run time"):
        TransformersLM(model="Qwen/Qwen2.5-7B-Instruct").validate()
    with pytest.raises(ValueError, match="dtype"):
        TransformersLM(dtype="int4").validate()


@pytest.mark.real_llm
@pytest.mark.slow
def test_the_bundled_scoring_model_is_read_from_its_gguf_alone():
    """The real 0.5B (the default model cache: the first call there also reads the tokenizer, ~1 min): bf16 weights
    read from the one GGUF, no converted checkpoint beside it, the embedding table kept quantized, log-probabilities
    equal to those of the former converted bf16 checkpoint (same text, identical values when measured on this
    machine; the tolerance allows another CPU's bf16 kernels), and the model dropped when the stage ends."""
    import torch

    from tacos.llm.likelihoods import transformers_lm
    from tacos.llm.serving.local_models import default_cache_dir
    from tacos.memory import release_models

    lm = TransformersLM(model="qwen2.5-coder-0.5b")
    [(lps, end, truncated)] = lm.score([SpanRequest(lm.chat_prefix("Name a colour."), "Blue is a colour of the sky.")])
    assert len(lps) == 8 and not truncated
    assert sum(lps) / len(lps) == pytest.approx(-2.7016, abs=0.05) and end == pytest.approx(-0.0076, abs=0.02)
    model = lm._loaded[1]
    assert model.dtype == torch.bfloat16 and model.get_input_embeddings().raw.dtype == torch.uint8
    weights = [p for p in default_cache_dir().rglob("*") if p.suffix in (".gguf", ".safetensors", ".bin")]
    assert [p.name for p in weights if "0.5b" in p.name] == ["qwen2.5-coder-0.5b.gguf"]  # one copy of the model
    meta = default_cache_dir() / "transformers"
    assert sum(f.stat().st_size for f in meta.rglob("*") if f.is_file()) < 50 << 20  # tokenizers + indexes only
    release_models()
    assert not transformers_lm._LOADED
