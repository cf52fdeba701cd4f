"""The dry run's checks besides the stages' own forecasts: does the forecast fit budget.max_usd (budget_check), and the
forecast of local compute in CPU-hours: what runs on this machine's CPU rather than through a paid
endpoint (calls to the embedded llama.cpp server, likelihood passes of the scoring model `lm`, sentence embeddings),
from measured seconds per unit. A forecast, not a promise: an upper bound on an idle machine of the same kind.

Where the numbers come from (all on the project's 2-core CPU machine):
  llm_call:tag, llm_call:score   README "Dry run", worked example: Qwen2.5-Coder-0.5B (Q8 GGUF) on the embedded
                                 llama.cpp server, one call at a time: ≈ 5 s per tagging call (~110 generated tokens),
                                 ≈ 3.5 s per pairwise scoring call; other stages' calls are taken as tagging calls.
  likelihood_pass                conf/lm/local.yaml: Qwen2.5-Coder-0.5B, bf16 CPU torch, ≈ 0.5 s per record and pass
                                 (responses cut at 512 tokens).
  embed_tag, embed_instruction,  measured for this table (issue 21) with tacos.method.clustering.embed_texts on the
  embed_response                 bundled all-MiniLM-L6-v2, batches of 128, 256 texts of the bundled sample pool, on
                                 the shared machine at load ≈ 14: 0.031 s per tag, 0.053 s per instruction, 0.30 s per
                                 response (cut at 256 tokens). Upper bounds: idle, the same runs several times faster.
"""
from __future__ import annotations

import math
from typing import Any

from omegaconf import OmegaConf

SECONDS_PER = {
    "llm_call:tag": 5.0,
    "llm_call:score": 3.5,
    "llm_call": 5.0,
    "likelihood_pass": 0.5,
    "embed_tag": 0.031,
    "embed_instruction": 0.053,
    "embed_response": 0.30,
}
LOCAL_LLM_TARGETS = ("tacos.llm.serving.servers.LocalLlamaServer", "tacos.llm.serving.servers.LocalLlamaCpp")
# Likelihood signals (tacos.judges.signals): the conditioned pass log P(response | instruction) serves all of them;
# these also need the unconditioned log P(response).
CONDITIONED = ("tacos.judges.signals.ResponseLikelihood", "tacos.judges.signals.Completeness")
TWO_PASSES = ("tacos.judges.signals.IFD", "tacos.judges.signals.LikelihoodGain")
EMBEDDING_JUDGES = ("tacos.judges.signals.EmbeddingRelevance",)


def _targets(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        found = {obj["_target_"]} if isinstance(obj.get("_target_"), str) else set()
        return found.union(*(_targets(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(_targets(v) for v in obj))
    return set()


def _select(cfg: Any, key: str) -> Any:
    try:
        node = OmegaConf.select(cfg, key, default=None)
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    except Exception:  # a value this forecast cannot resolve is not what the forecast is about
        return None


def cpu_hours(cfg: Any, stage: str, plan: dict, n_records: int | None) -> float:
    """Local CPU-hours of one stage: its calls to a local LLM server, and (score, cluster) the likelihood passes and
    embeddings of `n_records` pool rows (an upper bound: a guard may screen rows out before the likelihood judge)."""
    seconds = 0.0
    if _select(cfg, "llm._target_") in LOCAL_LLM_TARGETS:
        calls = int(plan.get("calls", 0) or 0)
        seconds += calls * SECONDS_PER.get(f"llm_call:{stage}", SECONDS_PER["llm_call"])
    n = int(n_records or 0)
    if stage == "score" and n:
        targets = _targets(_select(cfg, "scorer") or {})
        if str(_select(cfg, "lm.device") or "cpu") == "cpu" and targets & (set(CONDITIONED) | set(TWO_PASSES)):
            passes = 2 if targets & set(TWO_PASSES) else 1
            seconds += n * passes * SECONDS_PER["likelihood_pass"]
        if targets & set(EMBEDDING_JUDGES):
            seconds += n * (SECONDS_PER["embed_instruction"] + SECONDS_PER["embed_response"])
    if stage == "cluster" and n and _select(cfg, "clustering.name") != "none":
        seconds += n * SECONDS_PER["embed_tag"]  # at most one distinct canonical tag per row (usually far fewer)
    return round(seconds / 3600.0, 3)


def budget_check(report: dict[str, dict], stages: list[str], max_usd: float) -> dict:
    """Does the forecast fit budget.max_usd? When not: the stage during which the run would stop (the spend adds up in
    stage order) and the budget that would let it finish (the forecast rounded up to whole dollars)."""
    total = float(report.get("total", {}).get("usd", 0.0))
    spent, stops = 0.0, None
    for name in stages:
        spent += float((report.get(name) or {}).get("usd", 0.0))
        if spent > max_usd:
            stops = name
            break
    return {"max_usd": max_usd, "forecast_usd": round(total, 4), "over": stops is not None, "stops_during": stops,
            "suggested_max_usd": math.ceil(total) if stops else None}


def budget_warning(budget: dict) -> str | None:
    """The dry run's line when the forecast exceeds budget.max_usd."""
    if not budget or not budget.get("over"):
        return None
    return (f"forecast ${budget['forecast_usd']:.2f} > budget.max_usd={budget['max_usd']:g}: the run would stop during "
            f"{budget['stops_during']}; set budget.max_usd={budget['suggested_max_usd']}")
