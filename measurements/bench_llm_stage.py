"""LLM-stage throughput vs the raw backend, on the real embedded local server and the real tagging prompts.

    python measurements/bench_llm_stage.py [--n 12] [--llm local]

The same requests (messages, schema, sampling) are sent (a) straight through the openai SDK and (b) through
tacos' LLMClient with an empty cache, interleaved one by one so that background load hits both alike; then (c) the
client again on the now-filled cache. Prints calls/s and the client's overhead; writes outputs/measurements/llm_stage.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import openai

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tacos.data import PoolSource  # noqa: E402
from tacos.llm.calling.cache import CallCache  # noqa: E402
from tacos.llm.calling.client import LLMClient  # noqa: E402
from tacos.llm.calling.wire import response_format as _response_format  # noqa: E402
from tacos.llm.serving.servers import LocalLlamaServer# noqa: E402
from tacos.strategies.taggers import OpenTagger  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    args = ap.parse_args()
    records = PoolSource(path=str(REPO / "data/sample/alpaca_sample.jsonl.gz"), format="alpaca",
                         limit=args.n).load(seed=7)
    tagger = OpenTagger()
    requests = tagger.requests(records)
    provider = LocalLlamaServer(model=args.model)
    t0 = time.perf_counter()
    endpoint = provider.start()
    start_s = time.perf_counter() - t0
    try:
        raw = openai.OpenAI(base_url=endpoint.base_url, api_key="EMPTY", max_retries=0, timeout=600)
        with tempfile.TemporaryDirectory() as tmp:
            client = LLMClient(endpoint, CallCache(tmp), progress=False, timeout=600)
            t_raw = t_client = 0.0
            for req in requests:
                msgs = [{"role": r, "content": c} for r, c in req.messages]
                t = time.perf_counter()
                raw.chat.completions.create(model=endpoint.model, messages=msgs, temperature=req.temperature,
                                            max_tokens=req.max_tokens, top_p=req.top_p, seed=req.seed,
                                            response_format=_response_format(endpoint.structured_output, req.schema))
                t_raw += time.perf_counter() - t
                t = time.perf_counter()
                client.run([req], tagger.parse, desc="bench")
                t_client += time.perf_counter() - t
            t = time.perf_counter()
            client.run(requests, tagger.parse, desc="bench-cached")
            t_cached = time.perf_counter() - t
            stats = client.stats
    finally:
        provider.stop()
    n = len(requests)
    result = {"n": n, "server_start_s": round(start_s, 2), "raw_calls_per_s": round(n / t_raw, 3),
              "client_calls_per_s": round(n / t_client, 3),
              "client_overhead_pct": round(100 * (t_client - t_raw) / t_raw, 1),
              "cached_calls_per_s": round(n / t_cached, 1), "parse_retries": stats.retries, "invalid": stats.invalid}
    out = REPO / "outputs" / "measurements"
    out.mkdir(parents=True, exist_ok=True)
    (out / "llm_stage.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
