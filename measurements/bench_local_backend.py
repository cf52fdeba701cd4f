"""The embedded local LLM backends side by side: llama-cpp-python's server (LocalLlamaCpp) vs llama.cpp's own server
through xllamacpp (LocalLlamaServer, the `llm=local` default), optionally also a llama.cpp `llama-server` binary.

    python measurements/bench_local_backend.py [--n 8] [--kinds tag,pair,pref] [--threads 2] [--out FILE.json]
                                             [--via client|sdk] [--llama-server-bin PATH]
                                             [--skip-llama-cpp-python]

Every backend serves the same GGUF with the same thread count and n_ctx. The SAME requests go to every backend,
one call at a time and alternated between backends (the order flips every request), so only one server is under load
at a time and drifting machine load hits all of them alike. Three kinds of request, built by the project's own code
from the bundled sample pool:
  * tag   OpenTagger requests (schema-constrained JSON, ~100-160 generated tokens);
  * pair  ContrastiveScorer pairwise requests (long prompt, schema-constrained {"score_1", "score_2"});
  * pref  one-token logprob requests (ContrastiveScorer.preference_request: max_tokens=1, top_logprobs=5).
`--via client` (default) sends them through tacos.llm.calling.client.LLMClient with an empty call cache per backend (what a
run gets, parse retries included); `--via sdk` sends one plain openai-SDK request per call.

Reported per kind and backend: calls/s (= calls / summed call wall time) and the ratio to the others, peak RSS of
each server process (VmHWM), start time, and checks: the constrained answers are valid JSON of the schema, and the
logprob answers carry 5 top_logprobs for the first token. A Markdown table goes to stdout, everything to --out.
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tacos.llm.serving import local_models  # noqa: E402
from tacos.llm.calling.types import Endpoint  # noqa: E402
from tacos.llm.serving.servers import LocalLlamaCpp, LocalLlamaServer  # noqa: E402

KINDS = ("tag", "pair", "pref")
PREF_TOP_LOGPROBS = 5
LABELS = {"llama_cpp_python": "llama-cpp-python server", "xllamacpp": "llama.cpp server (xllamacpp, llm=local)",
          "llama_server_bin": "llama.cpp llama-server binary"}


# ---------------------------------------------------------------- requests (the project's own builders)

def _call(fn: Callable, *args: Any) -> Any:
    """fn(*args) or fn(*args, seed=0), whichever its signature asks for (the strategy API grew a seed)."""
    return fn(*args, seed=0) if "seed" in inspect.signature(fn).parameters else fn(*args)


def _preference_request(scorer_cls: type, a: Any, b: Any) -> Any:
    """The scorer's one-token logprob request for (a, b), with top_logprobs=5 and max_tokens=1."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(scorer_cls)}
    scorer = scorer_cls(top_logprobs=PREF_TOP_LOGPROBS) if "top_logprobs" in fields else scorer_cls()
    if hasattr(scorer, "preference_request"):
        request = _call(scorer.preference_request, a, b)
    else:
        request = scorer.request(a, b, seed=0, mode="logprob")
    if (request.max_tokens, request.logprobs) != (1, PREF_TOP_LOGPROBS):
        request = dataclasses.replace(request, max_tokens=1, logprobs=PREF_TOP_LOGPROBS)
    return request


def build_requests(n: int) -> tuple[dict[str, list], dict[str, Callable[[str], Any]]]:
    from tacos.data.loaders import load_records, sample_pool_path
    from tacos.strategies.contrastive import ContrastiveScorer
    from tacos.strategies.taggers import OpenTagger

    records = load_records(sample_pool_path(), limit=max(2, 2 * n), seed=0)
    if len(records) < 2 * n:
        raise SystemExit(f"the sample pool has {len(records)} records; --n {n} needs {2 * n}")
    tagger, scorer = OpenTagger(), ContrastiveScorer()
    pairs = [(records[2 * i], records[2 * i + 1]) for i in range(n)]
    requests = {"tag": _call(tagger.requests, records[:n]),
                "pair": [_call(scorer.request, a, b) for a, b in pairs],
                "pref": [_preference_request(ContrastiveScorer, a, b) for a, b in pairs]}
    parsers = {"tag": tagger.parse, "pair": scorer.parse, "pref": lambda raw: raw}
    return requests, parsers


# ---------------------------------------------------------------- senders

def _sdk_body(request: Any, endpoint: Endpoint) -> dict:
    """The request body LLMClient sends (first generation), for --via sdk."""
    from tacos.llm.calling.wire import request_body

    return request_body(request, 0, endpoint.model, endpoint.structured_output, endpoint.supports_logprobs, {})


class Sender:
    """One backend's way to answer a request: returns (seconds, record of what came back)."""

    def __init__(self, endpoint: Endpoint, via: str, cache_dir: Path):
        self.endpoint, self.via = endpoint, via
        if via == "client":
            from tacos.llm.calling.cache import CallCache
            from tacos.llm.calling.client import LLMClient

            self.client = LLMClient(endpoint, CallCache(cache_dir), progress=False, timeout=600)
        else:
            import httpx
            import openai

            self.sdk = openai.OpenAI(base_url=endpoint.base_url, api_key="EMPTY", max_retries=0, timeout=600,
                                     http_client=httpx.Client(trust_env=False))

    def send(self, request: Any, parser: Callable[[str], Any]) -> tuple[float, dict]:
        t0 = time.perf_counter()
        if self.via == "client":
            before = self.client.stats.backend_requests
            (res,) = self.client.run([request], parser, desc="bench")
            seconds = time.perf_counter() - t0
            return seconds, {"status": res.status, "raw": res.raw, "logprobs": res.logprobs,
                             "http_requests": self.client.stats.backend_requests - before,
                             "completion_tokens": res.completion_tokens}
        resp = self.sdk.chat.completions.create(**_sdk_body(request, self.endpoint))
        seconds = time.perf_counter() - t0
        choice = resp.choices[0]
        raw = choice.message.content or ""
        try:
            parser(raw)
            status = "ok"
        except Exception:  # noqa: BLE001 - a parse failure is a result here
            status = "invalid"
        lp = None
        if choice.logprobs is not None and choice.logprobs.content is not None:
            lp = [{"token": t.token, "logprob": t.logprob,
                   "top_logprobs": [{"token": a.token, "logprob": a.logprob} for a in (t.top_logprobs or [])]}
                  for t in choice.logprobs.content]
        return seconds, {"status": status, "raw": raw, "logprobs": lp, "http_requests": 1,
                         "completion_tokens": resp.usage.completion_tokens if resp.usage else None,
                         "finish_reason": choice.finish_reason}

    def close(self) -> None:
        (self.client if self.via == "client" else self.sdk).close()


def warm_up(endpoint: Endpoint) -> None:
    """One short untimed call outside the measured set (and outside the call cache): pages the model in."""
    import httpx
    import openai

    with openai.OpenAI(base_url=endpoint.base_url, api_key="EMPTY", max_retries=0, timeout=600,
                       http_client=httpx.Client(trust_env=False)) as sdk:
        sdk.chat.completions.create(model=endpoint.model, max_tokens=8, temperature=0,
                                    messages=[{"role": "user", "content": "Say hello."}])


# ---------------------------------------------------------------- checks and memory

def follows_schema(raw: str | None, schema: dict) -> bool:
    """The answer is JSON of `schema` (the subset the project's schemas use: object/array/string/integer/enum)."""
    try:
        value = json.loads(raw or "")
    except ValueError:
        return False

    def ok(v: Any, s: dict) -> bool:
        if "enum" in s and v not in s["enum"]:
            return False
        t = s.get("type")
        if t == "object":
            return isinstance(v, dict) and all(k in v for k in s.get("required", [])) and all(
                ok(v[k], sub) for k, sub in s.get("properties", {}).items() if k in v)
        if t == "array":
            return (isinstance(v, list) and s.get("minItems", 0) <= len(v) <= s.get("maxItems", math.inf)
                    and all(ok(x, s.get("items", {})) for x in v))
        if t == "string":
            return isinstance(v, str)
        if t == "integer":
            return isinstance(v, int) and not isinstance(v, bool) and s.get("minimum", -math.inf) <= v <= s.get(
                "maximum", math.inf)
        return True

    return ok(value, schema)


def peak_rss_mib(pid: int | None) -> float | None:
    """VmHWM summed over the server's process group (the server leads its own group)."""
    if pid is None:
        return None
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) != pid:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return round(total / 1024, 1)


# ---------------------------------------------------------------- main

def run(args: argparse.Namespace) -> dict:
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise SystemExit(f"unknown kinds {unknown}; choose from {KINDS}")
    requests, parsers = build_requests(args.n)
    providers: dict[str, Any] = {
        "llama_cpp_python": LocalLlamaCpp(model=args.model, n_ctx=args.n_ctx, n_threads=args.threads),
        "xllamacpp": LocalLlamaServer(model=args.model, n_ctx=args.n_ctx, n_threads=args.threads)}
    if args.llama_server_bin:
        providers["llama_server_bin"] = LocalLlamaServer(model=args.model, n_ctx=args.n_ctx, n_threads=args.threads,
                                                         server_binary=args.llama_server_bin)  # llm.server_binary
    if args.skip_llama_cpp_python:
        providers.pop("llama_cpp_python")
    names = list(providers)
    out: dict[str, Any] = {
        "config": {"model": args.model, "gguf_sha256": local_models.model_sha256(args.model), "n": args.n,
                   "kinds": kinds, "threads": args.threads, "n_ctx": args.n_ctx, "via": args.via,
                   "xllamacpp": LocalLlamaServer.engine_version(), "cpu_count": os.cpu_count(),
                   "loadavg_before": os.getloadavg()},
        "backends": {}, "kinds": {}}
    senders: dict[str, Sender] = {}
    with tempfile.TemporaryDirectory(prefix="bench_local_backend-") as tmp:
        try:
            for name in names:
                t0 = time.perf_counter()
                endpoint = providers[name].start(log_dir=Path(args.log_dir) if args.log_dir else Path(tmp) / "logs")
                out["backends"][name] = {"label": LABELS[name], "start_s": round(time.perf_counter() - t0, 2),
                                         "identity": providers[name].identity, "pid": providers[name].pid,
                                         "structured_output": endpoint.structured_output}
                senders[name] = Sender(endpoint, args.via, Path(tmp) / f"cache-{name}")
                warm_up(endpoint)
            for kind in kinds:
                per = {name: {"seconds": 0.0, "calls": 0, "http_requests": 0, "ok": 0, "schema_ok": 0,
                              "logprobs_ok": 0, "completion_tokens": 0, "first_tokens": [], "call_seconds": []}
                       for name in names}
                for i, request in enumerate(requests[kind]):
                    order = names if i % 2 == 0 else names[::-1]
                    for name in order:
                        seconds, got = senders[name].send(request, parsers[kind])
                        row = per[name]
                        row["seconds"] += seconds
                        row["call_seconds"].append(round(seconds, 3))
                        row["calls"] += 1
                        row["http_requests"] += got["http_requests"]
                        row["ok"] += got["status"] == "ok"
                        row["completion_tokens"] += got["completion_tokens"] or 0
                        if request.schema is not None:
                            row["schema_ok"] += follows_schema(got["raw"], request.schema)
                        lp = got["logprobs"] or []
                        if request.logprobs:
                            row["logprobs_ok"] += bool(lp) and len(lp[0]["top_logprobs"]) == request.logprobs and \
                                all(a["logprob"] <= 0 for a in lp[0]["top_logprobs"])
                            row["first_tokens"].append(lp[0]["token"] if lp else None)
                    print(f"{kind} {i + 1}/{len(requests[kind])}: " + ", ".join(
                        f"{n} {per[n]['seconds'] / per[n]['calls']:.2f} s/call" for n in names), file=sys.stderr,
                        flush=True)
                for row in per.values():
                    row["calls_per_s"] = round(row["calls"] / row["seconds"], 4) if row["seconds"] else None
                    # 1 / median call time: robust to the spikes other jobs on a shared machine cause
                    row["median_calls_per_s"] = round(1 / statistics.median(row["call_seconds"]), 4)
                    row["http_requests_per_s"] = round(row["http_requests"] / row["seconds"], 4) if row[
                        "seconds"] else None
                    row["completion_tokens_per_s"] = round(row["completion_tokens"] / row["seconds"], 2) if row[
                        "seconds"] else None
                    row["seconds"] = round(row["seconds"], 3)
                out["kinds"][kind] = per
            for name in names:
                out["backends"][name]["peak_rss_mib"] = peak_rss_mib(providers[name].pid)
        finally:
            for sender in senders.values():
                sender.close()
            for provider in providers.values():
                provider.stop()
    out["config"]["loadavg_after"] = os.getloadavg()
    base = "llama_server_bin" if "llama_server_bin" in names else names[0]
    out["ratios"] = {kind: {f"{n}/{base}": round(per[n]["calls_per_s"] / per[base]["calls_per_s"], 3)
                            for n in names if n != base}
                     for kind, per in out["kinds"].items()}
    out["median_ratios"] = {kind: {f"{n}/{base}": round(per[n]["median_calls_per_s"] / per[base]["median_calls_per_s"],
                                                        3) for n in names if n != base}
                            for kind, per in out["kinds"].items()}
    if "pref" in out["kinds"]:  # do the backends pick the same first token for the logprob requests?
        firsts = [out["kinds"]["pref"][n]["first_tokens"] for n in names]
        out["pref_first_token_agreement"] = round(sum(len(set(t)) == 1 for t in zip(*firsts)) / len(firsts[0]), 3)
    if "llama_server_bin" in names and "llama_cpp_python" in names:
        for kind, per in out["kinds"].items():
            for key, stat in (("ratios", "calls_per_s"), ("median_ratios", "median_calls_per_s")):
                out[key][kind]["xllamacpp/llama_cpp_python"] = round(
                    per["xllamacpp"][stat] / per["llama_cpp_python"][stat], 3)
    return out


def markdown(out: dict) -> str:
    names = list(out["backends"])
    cfg = out["config"]
    lines = [f"{cfg['model']} (sha256 {cfg['gguf_sha256'][:12]}…), {cfg['threads']} threads, n_ctx {cfg['n_ctx']}, "
             f"{cfg['n']} requests per kind via {cfg['via']}, xllamacpp {cfg['xllamacpp']}, load average "
             f"{cfg['loadavg_before'][0]:.2f} before / {cfg['loadavg_after'][0]:.2f} after", ""]
    ratio_keys = list(next(iter(out["ratios"].values()), {}))
    lines.append("calls/s = calls / summed call time [in brackets: 1 / median call time]; ratios of the same")
    lines.append("")
    lines.append("| kind | " + " | ".join(f"{LABELS[n]} calls/s" for n in names) + " | " +
                 " | ".join(f"ratio {k}" for k in ratio_keys) + " |")
    lines.append("|---" * (1 + len(names) + len(ratio_keys)) + "|")
    for kind, per in out["kinds"].items():
        lines.append(f"| {kind} | " + " | ".join(
            f"{per[n]['calls_per_s']:.3f} [{per[n]['median_calls_per_s']:.3f}]" for n in names) + " | " + " | ".join(
            f"{out['ratios'][kind][k]:.2f} [{out['median_ratios'][kind][k]:.2f}]" for k in ratio_keys) + " |")
    lines += ["", "| backend | start s | peak RSS MiB | " + " | ".join(
        f"{k}: ok / schema ok / logprobs ok / HTTP requests (req/s) / generated tok/s" for k in out["kinds"]) + " |",
        "|---" * (3 + len(out["kinds"])) + "|"]
    for n in names:
        b = out["backends"][n]
        cells = [f"{p[n]['ok']}/{p[n]['calls']} · {p[n]['schema_ok']} · {p[n]['logprobs_ok']} · "
                 f"{p[n]['http_requests']} ({p[n]['http_requests_per_s']:.3f}) · {p[n]['completion_tokens_per_s']:.1f}"
                 for p in out["kinds"].values()]
        lines.append(f"| {LABELS[n]} | {b['start_s']} | {b['peak_rss_mib']} | " + " | ".join(cells) + " |")
    if "pref_first_token_agreement" in out:
        lines.append(f"\npref: same first token on every backend for {out['pref_first_token_agreement']:.0%} of "
                     f"requests")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8, help="requests per kind (default 8)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of tag,pair,pref")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", help="a registry name or a .gguf path")
    ap.add_argument("--via", choices=("client", "sdk"), default="client")
    ap.add_argument("--llama-server-bin", default=None, help="also run this llama.cpp llama-server executable")
    ap.add_argument("--skip-llama-cpp-python", action="store_true", help="leave llama-cpp-python's server out")
    ap.add_argument("--log-dir", default=None, help="keep the servers' logs here (default: a temp dir)")
    ap.add_argument("--out", default=str(REPO / "outputs" / "bench_local_backend.json"))
    args = ap.parse_args(argv)
    out = run(args)
    print(markdown(out))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
