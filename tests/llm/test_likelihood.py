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
