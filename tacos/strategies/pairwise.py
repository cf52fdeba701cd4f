"""The contrastive (pairwise) scorer: TACOS's core step.

In every cluster a seeded shuffle + adjacent pairing (per round); one LLM call scores both samples of a pair; with
swap_order each pair is judged in both presentation orders. Per record and cluster: the Bradley-Terry strength with
a bootstrap CI and the reference's raw mean score, plus the order-consistency rate that exposes position bias.
Invalid answers are excluded and counted, never turned into a score.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from tacos.llm.types import LLMRequest
from tacos.prompts import prompts_hash, read_prompt, render
from tacos.records import Record
from tacos.strategies.scorers import LLMScorerBase, ScoreOutput, pairs_estimate, rounded, score_schema

PREFERENCE_PROMPT = "score_pair_preference.txt"


@dataclass
class ContrastiveScorer(LLMScorerBase):
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

    def identity(self) -> dict:
        ident = super().identity()
        if self.logprob_preference:
            ident["preference_prompt_hash"] = prompts_hash(self.system_prompt, PREFERENCE_PROMPT)
        return ident

    # -- the LLM work --------------------------------------------------------------------------------------------
    def ordered_pairs(self, clusters: dict[int, list[str]], seed: int) -> dict[int, list[tuple[str, str]]]:
        from tacos.method.scoring import make_pairs

        out = {}
        for c in sorted(clusters):
            pairs = make_pairs(clusters[c], self.rounds, seed, salt=str(c))
            out[c] = [p for a, b in pairs for p in (((a, b), (b, a)) if self.swap_order else ((a, b),))]
        return out

    def request(self, a: Record, b: Record, seed: int = 0) -> LLMRequest:
        lo, hi = self.scale
        (ia, ra), (ib, rb) = self.text(a), self.text(b)
        user = render(read_prompt(self.user_prompt), instruction_1=ia, response_1=ra, instruction_2=ib,
                      response_2=rb, lo=lo, hi=hi)
        return self.chat(user, score_schema(["score_1", "score_2"], lo, hi), f"{a.id}|{b.id}", seed)

    def preference_request(self, a: Record, b: Record, seed: int = 0) -> LLMRequest:
        (ia, ra), (ib, rb) = self.text(a), self.text(b)
        user = render(read_prompt(PREFERENCE_PROMPT), instruction_1=ia, response_1=ra, instruction_2=ib, response_2=rb)
        return self.chat(user, None, f"pref:{a.id}|{b.id}", seed, temperature=0.0, max_tokens=1, logprobs=5,
                         prompt_hash=prompts_hash(self.system_prompt, PREFERENCE_PROMPT))

    def parse(self, raw: str) -> tuple[float, float]:
        from tacos.llm.parsing import parse_score_pair

        return parse_score_pair(raw, *self.scale)

    def unique_pairs(self, clusters: dict[int, list[str]], seed: int) -> list[tuple[str, str]]:
        return sorted({p for pairs in self.ordered_pairs(clusters, seed).values() for p in pairs})

    def requests(self, records, clusters, seed: int = 0) -> list[LLMRequest]:
        reqs = [self.request(records[a], records[b], seed) for a, b in self.unique_pairs(clusters, seed)]
        if self.logprob_preference:
            reqs += [self.preference_request(records[a], records[b], seed) for a, b in self.unique_pairs(clusters, seed)]
        return reqs

    def estimated_calls(self, n_records: int) -> int:
        per = pairs_estimate(n_records, self.rounds, 2 if self.swap_order else 1)
        return per * (2 if self.logprob_preference else 1)

    def sample_requests(self, pool: list[Record], seed: int = 0) -> list[LLMRequest]:
        n = len(pool)
        return [self.request(pool[i], pool[(i + 1) % n], seed) for i in range(min(n, 20))] if n > 1 else []

    # -- scoring -------------------------------------------------------------------------------------------------
    def score(self, records, clusters, llm, seed: int = 0) -> ScoreOutput:
        from tacos.method.scoring import Judgment, bradley_terry_ci, order_consistency, outcomes, raw_means

        per_cluster = self.ordered_pairs(clusters, seed)
        unique = self.unique_pairs(clusters, seed)
        results = llm.run([self.request(records[a], records[b], seed) for a, b in unique], self.parse,
                          desc="score (pairwise)")
        n_err = sum(1 for r in results if r.status == "error")
        by_pair = dict(zip(unique, results))
        prefs = self._preferences(llm, records, unique, seed) if self.logprob_preference else {}
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
            bt = bradley_terry_ci(members, outcomes(judgments, self.tie_margin), n_boot=self.n_boot, seed=seed)
            raw = raw_means(judgments)
            n_j: dict[str, int] = defaultdict(int)
            for j in judgments:
                if j.score_first is not None:
                    n_j[j.first] += 1
                    n_j[j.second] += 1
            for i in members:
                est, lo, hi = bt.get(i, (0.0, None, None))
                score = est if self.aggregate == "bradley_terry" else raw.get(i)
                rows.append({"id": i, "cluster": c, "score": rounded(score), "ci_low": rounded(lo),
                             "ci_high": rounded(hi), "raw_score": rounded(raw.get(i)), "n_judgments": n_j[i],
                             "p_better": rounded(_mean_pref(i, pairs, prefs)) if prefs else None})
        consistency = order_consistency(all_judgments)
        n_invalid = sum(1 for r in results if r.status == "invalid")
        counts = {"clusters": len(clusters), "judgments": len(judgment_rows), "llm_requests": len(unique),
                  "invalid": n_invalid, "errors": n_err, "scored": len(rows),
                  "unscored": sum(1 for r in rows if r["n_judgments"] == 0)}
        stats = {"invalid_rate": round(n_invalid / max(1, len(unique)), 4), **consistency}
        dist = {"score": [r["score"] for r in rows if r["score"] is not None]}
        raws = [r["raw_score"] for r in rows if r["raw_score"] is not None]
        if raws:
            dist["raw_mean"] = raws
        table = {"columns": ["metric", "value"], "data": [[k, v] for k, v in consistency.items()]}
        return ScoreOutput(rows, judgment_rows, counts, stats, dist, {"order_consistency": table})

    def _preferences(self, llm, records, pairs, seed: int) -> dict[tuple[str, str], float]:
        """P(first better) read from the logprobs of the answer token '1' vs '2', where the backend returns them."""
        results = llm.run([self.preference_request(records[a], records[b], seed) for a, b in pairs],
                          lambda raw: raw, desc="score (logprob preference)")
        out = {}
        for p, res in zip(pairs, results):
            p1 = first_token_preference(res.logprobs)
            if p1 is not None:
                out[p] = p1
        return out


def first_token_preference(logprobs, tokens: tuple[str, str] = ("1", "2")) -> float | None:
    """P(tokens[0]) / (P(tokens[0]) + P(tokens[1])) at the first generated position, or None if neither appears."""
    if not logprobs:
        return None
    first = logprobs[0]
    tops = first.get("top_logprobs") if isinstance(first, dict) else None
    cand = {str(t.get("token", "")).strip(): t.get("logprob") for t in (tops or []) if isinstance(t, dict)}
    if isinstance(first, dict):
        cand.setdefault(str(first.get("token", "")).strip(), first.get("logprob"))
    l1, l2 = cand.get(tokens[0]), cand.get(tokens[1])
    if l1 is None and l2 is None:
        return None
    p1 = math.exp(l1) if l1 is not None else 0.0
    p2 = math.exp(l2) if l2 is not None else 0.0
    return p1 / (p1 + p2) if p1 + p2 > 0 else None


def _mean_pref(i: str, pairs, prefs) -> float | None:
    vals = [prefs[(a, b)] if a == i else 1 - prefs[(a, b)] for a, b in pairs if i in (a, b) and (a, b) in prefs]
    return sum(vals) / len(vals) if vals else None
