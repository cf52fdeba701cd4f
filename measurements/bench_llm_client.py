"""Throughput of LLMClient vs. the raw openai SDK on the same prompts (calls/s), plus a fully cached re-run.

    python measurements/bench_llm_client.py                          # starts tests/stub_server.py as a subprocess
    python measurements/bench_llm_client.py --base-url http://127.0.0.1:8000/v1 --n 20 --concurrency 1 2
        (any OpenAI-compatible server; --api-key-env NAME when it needs a key)

The raw baseline is what a stage would do without the client: a thread pool calling
chat.completions.create. The client adds the cache lookups and writes (SQLite, commit per call),
the ledger and the parse step; the difference is its overhead.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tacos.llm.calling.cache import CallCache  # noqa: E402
from tacos.llm.calling.client import LLMClient  # noqa: E402
from tacos.llm.calling.types import LLMRequest  # noqa: E402
from tacos.llm.calling.types import Endpoint  # noqa: E402


def start_stub(workdir: Path) -> tuple[subprocess.Popen, str]:
    port_file = workdir / "stub.port"
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "stub_server.py"), "--port-file", str(port_file),
                             "--log", str(workdir / "stub.log")])
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the stub server did not start (see its stderr above)")
        time.sleep(0.02)
    return proc, f"http://127.0.0.1:{port_file.read_text()}/v1"


def bench_raw(endpoint: Endpoint, prompts: list[str], concurrency: int, max_tokens: int) -> float:
    api = openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key(), max_retries=0, timeout=300)

    def one(prompt: str) -> str:
        reply = api.chat.completions.create(model=endpoint.model, messages=[{"role": "user", "content": prompt}],
                                            temperature=0.0, max_tokens=max_tokens, top_p=1.0, seed=0)
        return reply.choices[0].message.content

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, prompts))
    api.close()
    return time.perf_counter() - started


def bench_client(endpoint: Endpoint, prompts: list[str], concurrency: int, max_tokens: int,
                 cache_dir: Path) -> tuple[float, float]:
    requests = [LLMRequest(messages=(("user", p),), prompt_hash="bench", max_tokens=max_tokens) for p in prompts]
    timings = []
    for _ in range(2):  # fresh, then everything from the cache
        with LLMClient(endpoint, CallCache(cache_dir), max_concurrency=concurrency, progress=False) as client:
            started = time.perf_counter()
            results = client.run(requests, parser=str)
            timings.append(time.perf_counter() - started)
            client.cache.close()
        bad = [r for r in results if r.status != "ok"]
        if bad:
            raise RuntimeError(f"{len(bad)} calls failed, e.g. {bad[0].error}")
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", help="OpenAI-compatible server (default: start the stub)")
    parser.add_argument("--model", default="stub")
    parser.add_argument("--api-key-env", help="environment variable that holds the API key, if one is needed")
    parser.add_argument("--n", type=int, default=200, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_llm_") as tmp:
        workdir = Path(tmp)
        stub, base_url = start_stub(workdir) if args.base_url is None else (None, args.base_url)
        try:
            endpoint = Endpoint(base_url=base_url, model=args.model, identity=f"bench:{args.model}",
                                api_key_env=args.api_key_env)
            print(f"server {base_url}  n={args.n}  max_tokens={args.max_tokens}  python {sys.version.split()[0]}  "
                  f"openai {openai.__version__}  cpus {os.cpu_count()}")
            print(f"{'concurrency':>11} {'raw SDK calls/s':>16} {'LLMClient calls/s':>18} {'added ms/call':>17} "
                  f"{'cached re-run calls/s':>22}")
            for concurrency in args.concurrency:
                # Same prompts for both; the client goes first, so a server-side prompt cache (llama.cpp has
                # one) can only favour the raw SDK and the overhead shown is not understated.
                prompts = [f"Say the number {i} (c={concurrency})." for i in range(args.n)]
                fresh_s, cached_s = bench_client(endpoint, prompts, concurrency, args.max_tokens,
                                                 workdir / f"cache_c{concurrency}")
                raw_s = bench_raw(endpoint, prompts, concurrency, args.max_tokens)
                overhead_ms = (fresh_s - raw_s) / args.n * 1000
                print(f"{concurrency:>11} {args.n / raw_s:>16.1f} {args.n / fresh_s:>18.1f} {overhead_ms:>17.2f} "
                      f"{args.n / cached_s:>22.0f}")
        finally:
            if stub is not None:
                stub.terminate()
                stub.wait()


if __name__ == "__main__":
    main()
