"""Helper for test_llm_cache_resume: run LLMClient over N deterministic requests, print a JSON summary.

    python tests/_resume_worker.py --base-url URL --cache-dir DIR --n N --concurrency C
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tacos.llm.calling.cache import CallCache  # noqa: E402
from tacos.llm.calling.client import LLMClient  # noqa: E402
from tacos.llm.calling.types import LLMRequest  # noqa: E402
from tacos.llm.calling.types import Endpoint  # noqa: E402
from tacos.llm.calling.parsing import extract_json  # noqa: E402


def requests(n: int) -> list[LLMRequest]:
    return [LLMRequest(messages=(("user", f"resume item {i}"),), prompt_hash="r" * 64) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    args = parser.parse_args()
    endpoint = Endpoint(base_url=args.base_url, model="stub-model", identity="stub-model@resume")
    with LLMClient(endpoint, CallCache(args.cache_dir), max_concurrency=args.concurrency, progress=False,
                   backoff_base=0.001) as client:
        results = client.run(requests(args.n), extract_json)
    echo = [r.parsed["echo"] if r.status == "ok" else None for r in results]
    print(json.dumps({"statuses": [r.status for r in results], "echo": echo, "calls": client.stats.calls,
                      "cache_hits": client.stats.cache_hits}))


if __name__ == "__main__":
    main()
