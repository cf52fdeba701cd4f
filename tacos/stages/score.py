"""Stage `score`: contrastive (pairwise) scoring inside each cluster, or single-sample / length scoring (ablations).

Contrastive: in every cluster, a seeded shuffle + adjacent pairing (per round); one LLM call scores both samples of a
pair; with swap_order each pair is judged in both presentation orders. Per record and cluster we report the
Bradley-Terry strength (with a bootstrap CI) and the reference's raw mean score, plus the order-consistency rate that
exposes position bias. Invalid answers are excluded and counted, never turned into a score.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field

from tacos.config import to_container
from tacos.records import Record, write_jsonl
from tacos.stages.common import (check_errors, empty_plan, fill, instruction_text, load_pool, pool_for_plan,
                                 prompts_hash, read_prompt)

COMPONENTS = ("scorer",)
SHAREABLE = True  # output depends only on config + inputs: computed once across runs (tacos.store)
PREFERENCE_PROMPT = "score_pair_preference.txt"


def _score_schema(names: list[str], lo: float, hi: float) -> dict:
    # Small integer scales as enums: llama.cpp's grammar converter honours enum reliably.
    lo_i, hi_i = int(lo), int(hi)
    prop = {"type": "integer", "enum": list(range(lo_i, hi_i + 1))} if hi_i - lo_i <= 10 else \
        {"type": "integer", "minimum": lo_i, "maximum": hi_i}
    return {"type": "object", "properties": {n: prop for n in names}, "required": names}


@dataclass
class _LLMScorer:
    name: str = ""
    system_prompt: str = "score_system.txt"
    user_prompt: str = ""
    scale: list = field(default_factory=lambda: [1, 6])
    temperature: float = 0.0
    max_tokens: int = 48

    def validate(self) -> None:
        self.prompt_hash()
        if len(self.scale) != 2 or self.scale[0] >= self.scale[1]:
            raise ValueError(f"scorer.scale must be [low, high] with low < high, got {self.scale}")

    def prompt_hash(self) -> str:
        return prompts_hash(self.system_prompt, self.user_prompt)

    def _request(self, user: str, schema: dict, label: str):
        from tacos.llm.client import LLMRequest

        return LLMRequest(messages=(("system", read_prompt(self.system_prompt).strip()), ("user", user)),
                          prompt_hash=self.prompt_hash(), temperature=self.temperature, max_tokens=self.max_tokens,
                          schema=schema, label=label)


@dataclass
class ContrastiveScorer(_LLMScorer):
    name: str = "contrastive"
    user_prompt: str = "score_pair.txt"
    rounds: int = 1
    swap_order: bool = True
    aggregate: str = "bradley_terry"
    tie_margin: float = 0.0
    n_boot: int = 200
    logprob_preference: bool = False

    def validate(self) -> None:
        super().validate()
        if self.aggregate not in ("bradley_terry", "raw_mean"):
            raise ValueError(f"scorer.aggregate must be bradley_terry or raw_mean, not {self.aggregate!r}")
        if self.rounds < 1:
            raise ValueError("scorer.rounds must be >= 1")

    def ordered_pairs(self, clusters: dict[int, list[str]], seed: int) -> dict[int, list[tuple[str, str]]]:
        from tacos.method.scoring import make_pairs

        out = {}
        for c in sorted(clusters):
            pairs = make_pairs(clusters[c], self.rounds, seed, salt=str(c))
            out[c] = [p for a, b in pairs for p in (((a, b), (b, a)) if self.swap_order else ((a, b),))]
        return out

    def request(self, a: Record, b: Record):
        lo, hi = self.scale
        user = fill(read_prompt(self.user_prompt), instruction_1=instruction_text(a), response_1=a.output,
                    instruction_2=instruction_text(b), response_2=b.output, lo=lo, hi=hi)
        return self._request(user, _score_schema(["score_1", "score_2"], lo, hi), f"{a.id}|{b.id}")

    def preference_request(self, a: Record, b: Record):
        from tacos.llm.client import LLMRequest

        user = fill(read_prompt(PREFERENCE_PROMPT), instruction_1=instruction_text(a), response_1=a.output,
                    instruction_2=instruction_text(b), response_2=b.output)
        return LLMRequest(messages=(("system", read_prompt(self.system_prompt).strip()), ("user", user)),
                          prompt_hash=prompts_hash(self.system_prompt, PREFERENCE_PROMPT), temperature=0.0,
                          max_tokens=1, logprobs=5, label=f"pref:{a.id}|{b.id}")

    def parse(self, raw: str) -> tuple[float, float]:
        from tacos.llm.parsing import parse_score_pair

        return parse_score_pair(raw, *self.scale)


@dataclass
class SingleScorer(_LLMScorer):
    name: str = "single"
    user_prompt: str = "score_single.txt"

    def request(self, r: Record):
        lo, hi = self.scale
        user = fill(read_prompt(self.user_prompt), instruction=instruction_text(r), response=r.output, lo=lo, hi=hi)
        return self._request(user, _score_schema(["score"], lo, hi), r.id)

    def parse(self, raw: str) -> float:
        from tacos.llm.parsing import parse_score

        return parse_score(raw, *self.scale)


@dataclass
class LengthScorer:
    name: str = "length"


def requires(cfg) -> list[str]:
    return ["data", "cluster"]


def uses_llm(cfg) -> bool:
    return not cfg.scorer._target_.endswith("LengthScorer")


def config_slice(cfg) -> dict:
    s = to_container(cfg.scorer)
    if uses_llm(cfg):
        s["prompt_hash"] = prompts_hash(s["system_prompt"], s["user_prompt"])
    return {"scorer": s, "seed": int(cfg.seed)}


def _clusters(ctx) -> dict[int, list[str]]:
    raw = json.loads((ctx.input_dir("cluster") / "clusters.json").read_text(encoding="utf-8"))
    return {int(c): ids for c, ids in raw.items()}


def run(ctx) -> dict:
    from tacos.plots import score_distribution

    records = {r.id: r for r in load_pool(ctx)}
    clusters = _clusters(ctx)
    scorer = ctx.component("scorer")
    if isinstance(scorer, ContrastiveScorer):
        rows, counts, stats = _contrastive(ctx, scorer, records, clusters)
    elif isinstance(scorer, SingleScorer):
        rows, counts, stats = _single(ctx, scorer, records, clusters)
    else:
        rows = [{"id": i, "cluster": c, "score": float(len(records[i].output)), "raw_score": float(len(records[i].output)),
                 "ci_low": None, "ci_high": None, "n_judgments": 0} for c in sorted(clusters) for i in clusters[c]]
        counts, stats = {"scored": len(rows)}, {}
    write_jsonl(ctx.out_dir / "scores.jsonl", rows)
    dist = {"score": [r["score"] for r in rows if r["score"] is not None]}
    raws = [r["raw_score"] for r in rows if r["raw_score"] is not None]
    if raws and isinstance(scorer, ContrastiveScorer):
        dist["raw_mean"] = raws
    score_distribution(dist, ctx.out_dir / "score_distribution.png", title=f"Scores ({scorer.name})")
    ctx.add_plot(ctx.out_dir / "score_distribution.png")
    return {"counts": counts, "stats": stats}


def _contrastive(ctx, scorer: ContrastiveScorer, records: dict[str, Record], clusters: dict[int, list[str]]):
    from tacos.method.scoring import Judgment, bradley_terry_ci, order_consistency, outcomes, raw_means

    per_cluster = scorer.ordered_pairs(clusters, int(ctx.cfg.seed))
    unique = sorted({p for pairs in per_cluster.values() for p in pairs})
    results = ctx.llm.run([scorer.request(records[a], records[b]) for a, b in unique], scorer.parse,
                          desc="score (pairwise)")
    n_err = check_errors(ctx, results, "score")
    by_pair = dict(zip(unique, results))
    prefs = _preferences(ctx, scorer, records, unique) if scorer.logprob_preference else {}
    judgment_rows, rows, all_judgments = [], [], []
    for c, pairs in per_cluster.items():
        judgments = []
        for a, b in pairs:
            res = by_pair[(a, b)]
            s1, s2 = res.parsed if res.status == "ok" else (None, None)
            judgments.append(Judgment(first=a, second=b, score_first=s1, score_second=s2))
            judgment_rows.append({"cluster": c, "first": a, "second": b, "score_first": s1, "score_second": s2,
                                  "status": res.status, "cached": res.cached, "cache_key": res.key,
                                  "p_first_better": prefs.get((a, b))})
        all_judgments.extend(judgments)
        members = clusters[c]
        bt = bradley_terry_ci(members, outcomes(judgments, scorer.tie_margin), n_boot=scorer.n_boot,
                              seed=int(ctx.cfg.seed))
        raw = raw_means(judgments)
        n_j = defaultdict(int)
        for j in judgments:
            if j.score_first is not None:
                n_j[j.first] += 1
                n_j[j.second] += 1
        for i in members:
            est, lo, hi = bt.get(i, (0.0, None, None))
            score = est if scorer.aggregate == "bradley_terry" else raw.get(i)
            rows.append({"id": i, "cluster": c, "score": _r(score), "ci_low": _r(lo), "ci_high": _r(hi),
                         "raw_score": _r(raw.get(i)), "n_judgments": n_j[i],
                         "p_better": _r(_mean_pref(i, pairs, prefs)) if prefs else None})
    write_jsonl(ctx.out_dir / "judgments.jsonl", judgment_rows)
    consistency = order_consistency(all_judgments)
    n_invalid = sum(1 for r in results if r.status == "invalid")
    counts = {"clusters": len(clusters), "judgments": len(judgment_rows), "llm_requests": len(unique),
              "invalid": n_invalid, "errors": n_err, "scored": len(rows),
              "unscored": sum(1 for r in rows if r["n_judgments"] == 0)}
    stats = {"invalid_rate": round(n_invalid / max(1, len(unique)), 4), **consistency}
    ctx.add_table("order_consistency", ["metric", "value"], [[k, v] for k, v in consistency.items()])
    return rows, counts, stats


def _preferences(ctx, scorer, records, pairs) -> dict[tuple[str, str], float]:
    """P(first better) read from the logprobs of the answer token '1' vs '2', where the backend returns logprobs."""
    results = ctx.llm.run([scorer.preference_request(records[a], records[b]) for a, b in pairs], lambda raw: raw,
                          desc="score (logprob preference)")
    out = {}
    for p, res in zip(pairs, results):
        p1 = _first_token_preference(res.logprobs)
        if p1 is not None:
            out[p] = p1
    return out


def _first_token_preference(logprobs) -> float | None:
    if not logprobs:
        return None
    first = logprobs[0]
    tops = first.get("top_logprobs") if isinstance(first, dict) else None
    cand = {str(t.get("token", "")).strip(): t.get("logprob") for t in (tops or []) if isinstance(t, dict)}
    if isinstance(first, dict):
        cand.setdefault(str(first.get("token", "")).strip(), first.get("logprob"))
    l1, l2 = cand.get("1"), cand.get("2")
    if l1 is None and l2 is None:
        return None
    p1 = math.exp(l1) if l1 is not None else 0.0
    p2 = math.exp(l2) if l2 is not None else 0.0
    return p1 / (p1 + p2) if p1 + p2 > 0 else None


def _mean_pref(i: str, pairs, prefs) -> float | None:
    vals = [prefs[(a, b)] if a == i else 1 - prefs[(a, b)] for a, b in pairs if i in (a, b) and (a, b) in prefs]
    return sum(vals) / len(vals) if vals else None


def _single(ctx, scorer: SingleScorer, records: dict[str, Record], clusters: dict[int, list[str]]):
    ids = sorted({i for members in clusters.values() for i in members})
    results = ctx.llm.run([scorer.request(records[i]) for i in ids], scorer.parse, desc="score (single)")
    n_err = check_errors(ctx, results, "score")
    score = {i: (res.parsed if res.status == "ok" else None) for i, res in zip(ids, results)}
    rows = [{"id": i, "cluster": c, "score": _r(score[i]), "raw_score": _r(score[i]), "ci_low": None, "ci_high": None,
             "n_judgments": int(score[i] is not None)} for c in sorted(clusters) for i in clusters[c]]
    n_invalid = sum(1 for r in results if r.status == "invalid")
    counts = {"clusters": len(clusters), "llm_requests": len(ids), "invalid": n_invalid, "errors": n_err,
              "scored": len(rows)}
    return rows, counts, {"invalid_rate": round(n_invalid / max(1, len(ids)), 4)}


def _r(x):
    return None if x is None else round(float(x), 6)


def plan(ctx) -> dict:
    """Exact when the cluster stage's output is in the run dir; otherwise an estimate from the pool size."""
    scorer = ctx.component("scorer")
    if not uses_llm(ctx.cfg):
        return empty_plan()
    cluster_dir = ctx.run_dir / "cluster"
    if (cluster_dir / "manifest.json").is_file():
        records = {r.id: r for r in pool_for_plan(ctx)}
        clusters = _clusters(ctx)
        if isinstance(scorer, ContrastiveScorer):
            unique = sorted({p for ps in scorer.ordered_pairs(clusters, int(ctx.cfg.seed)).values() for p in ps})
            reqs = [scorer.request(records[a], records[b]) for a, b in unique]
        else:
            reqs = [scorer.request(records[i]) for i in sorted({i for m in clusters.values() for i in m})]
        return {**ctx.llm.forecast(reqs), "exact": True}
    pool = pool_for_plan(ctx)
    n = len(pool)
    if isinstance(scorer, ContrastiveScorer):
        # Assumes ~1 cluster membership per record after label-set dedup (TACOS Alpaca: 5,047 rows, 15.3k memberships
        # -> ~3 per kept row, but dedup keeps ~10%): calls = ceil(n/2) pairs x rounds x orders.
        per = (2 if scorer.swap_order else 1) * scorer.rounds
        calls = math.ceil(n / 2) * per
        sample = [scorer.request(pool[i], pool[(i + 1) % n]) for i in range(min(n, 20))] if n > 1 else []
    else:
        calls = n
        sample = [scorer.request(r) for r in pool[:20]]
    fc = ctx.llm.forecast(sample) if sample else empty_plan()
    scale = calls / max(1, len(sample))
    return {"calls": calls, "cache_hits": 0, "prompt_tokens": int(fc["prompt_tokens"] * scale),
            "completion_tokens": int(fc["completion_tokens"] * scale), "usd": fc["usd"] * scale, "exact": False}
