"""The contrastive (pairwise) scorer: TACOS's core step.

In every cluster a seeded shuffle + adjacent pairing per round (`rounds` > 1: a record meets several opponents);
with swap_order each pair is judged in both presentation orders. Two ways to judge a pair (`judgment`):

  logprob  one-token answer ("1" or "2"); P(first better) read from the first token's log-probabilities in both
           orders, the judge's pull towards a position cancelled exactly (tacos.method.scoring.debias), and the
           soft outcome fed into the Bradley-Terry fit. Needs an endpoint that returns log-probabilities.
  text     the reference: one call scores both responses (JSON, e.g. 1-6); hard win/tie/loss per order.
  auto     logprob where the endpoint returns log-probabilities, else text.

Per record and cluster: the Bradley-Terry strength with a bootstrap CI and an absolute score comparable across
clusters (text: the reference's mean judge score; logprob: the mean debiased win probability), plus the diagnostics
that expose position bias. A record that no valid judgment scored gets score None (excluded by selection, listed),
never a default.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from tacos.llm.types import LLMRequest
from tacos.method.bradley_terry import bradley_terry_ci
from tacos.method.scoring import (Judgment, debias, first_token_logprobs, make_pairs, order_consistency, outcomes,
                                  preference_logit, raw_means)
from tacos.prompts import prompts_hash, read_prompt, render
from tacos.records import Record
from tacos.strategies.scorers import LLMScorerBase, ScoreOutput, pairs_estimate, rounded, score_schema

JUDGMENTS = ("text", "logprob", "auto")


@dataclass
class ContrastiveScorer(LLMScorerBase):
    name: str = "contrastive"
    user_prompt: str = "score_pair.txt"  # text judgments: both scores as JSON
    preference_prompt: str = "score_pair_preference.txt"  # logprob judgments: "1" or "2"
    judgment: str = "text"
    rounds: int = 1
    swap_order: bool = True
    aggregate: str = "bradley_terry"
    tie_margin: float = 0.0
    n_boot: int = 200
    top_logprobs: int = 10

    pairwise = True

    def validate(self) -> None:
        super().validate()
        prompts_hash(self.system_prompt, self.preference_prompt)
        if self.judgment not in JUDGMENTS:
            raise ValueError(f"scorer.judgment must be one of {JUDGMENTS}, not {self.judgment!r}")
        if self.aggregate not in ("bradley_terry", "raw_mean"):
            raise ValueError(f"scorer.aggregate must be bradley_terry or raw_mean, not {self.aggregate!r}")
        if self.rounds < 1:
            raise ValueError("scorer.rounds must be >= 1")
        if self.judgment != "text" and not self.swap_order:
            raise ValueError("scorer.judgment=logprob cancels the position bias with both orders: keep "
                             "scorer.swap_order=true (or use judgment=text)")

    def mode(self, supports_logprobs: bool) -> str:
        return "logprob" if self.judgment == "logprob" or (self.judgment == "auto" and supports_logprobs) else "text"

    def identity(self) -> dict:
        return {"prompt_hash": self.prompt_hash(),
                "preference_prompt_hash": prompts_hash(self.system_prompt, self.preference_prompt)}

    def judge_prompt_hash(self, mode: str) -> str:
        """The prompt bytes behind a judgment in `mode`: what a judge-eval measurement is matched on."""
        return prompts_hash(self.system_prompt, self.preference_prompt) if mode == "logprob" else self.prompt_hash()

    # -- the LLM work --------------------------------------------------------------------------------------------
    def ordered_pairs(self, clusters: dict[int, list[str]], seed: int) -> dict[int, list[tuple[str, str]]]:
        out = {}
        for c in sorted(clusters):
            pairs = make_pairs(clusters[c], self.rounds, seed, salt=str(c))
            out[c] = [p for a, b in pairs for p in (((a, b), (b, a)) if self.swap_order else ((a, b),))]
        return out

    def unique_pairs(self, clusters: dict[int, list[str]], seed: int) -> list[tuple[str, str]]:
        return sorted({p for pairs in self.ordered_pairs(clusters, seed).values() for p in pairs})

    def request(self, a: Record, b: Record, seed: int = 0, mode: str = "text") -> LLMRequest:
        (ia, ra), (ib, rb) = self.text(a), self.text(b)
        if mode == "logprob":
            user = render(read_prompt(self.preference_prompt), instruction_1=ia, response_1=ra, instruction_2=ib,
                          response_2=rb)
            return self.chat(user, None, f"pref:{a.id}|{b.id}", seed, temperature=0.0, max_tokens=1,
                             logprobs=self.top_logprobs,
                             prompt_hash=prompts_hash(self.system_prompt, self.preference_prompt))
        lo, hi = self.scale
        user = render(read_prompt(self.user_prompt), instruction_1=ia, response_1=ra, instruction_2=ib,
                      response_2=rb, lo=lo, hi=hi)
        return self.chat(user, score_schema(["score_1", "score_2"], lo, hi), f"{a.id}|{b.id}", seed)

    def parse(self, raw: str) -> tuple[float, float]:
        from tacos.llm.parsing import parse_score_pair

        return parse_score_pair(raw, *self.scale)

    def requests(self, records, clusters, seed: int = 0, supports_logprobs: bool = True) -> list[LLMRequest]:
        mode = self.mode(supports_logprobs)
        return [self.request(records[a], records[b], seed, mode) for a, b in self.unique_pairs(clusters, seed)]

    def estimated_calls(self, n_records: int) -> int:
        return pairs_estimate(n_records, self.rounds, 2 if self.swap_order else 1)

    def sample_requests(self, pool: list[Record], seed: int = 0, supports_logprobs: bool = True) -> list[LLMRequest]:
        n, mode = len(pool), self.mode(supports_logprobs)
        return [self.request(pool[i], pool[(i + 1) % n], seed, mode) for i in range(min(n, 20))] if n > 1 else []

    # -- scoring -------------------------------------------------------------------------------------------------
    def score(self, records, clusters, llm, seed: int = 0) -> ScoreOutput:
        mode = self.mode(llm.supports_logprobs)
        unique = self.unique_pairs(clusters, seed)
        requests = [self.request(records[a], records[b], seed, mode) for a, b in unique]
        if mode == "logprob":
            results = llm.run(requests, lambda raw: raw, desc="score (pairwise, log-probabilities)")
            judge = _LogprobJudgments(dict(zip(unique, results)))
        else:
            results = llm.run(requests, self.parse, desc="score (pairwise)")
            judge = _TextJudgments(dict(zip(unique, results)), self.tie_margin)
        rows, judgment_rows = [], []
        for c, pairs in self.ordered_pairs(clusters, seed).items():
            judgment_rows += [{"cluster": c, **judge.row(a, b)} for a, b in pairs]
            comparisons = judge.comparisons(pairs)
            bt = bradley_terry_ci(clusters[c], comparisons, n_boot=self.n_boot, seed=seed)
            absolute = judge.absolute(pairs)
            n_j: dict[str, int] = defaultdict(int)
            for a, b, _ in comparisons:
                n_j[a] += 1
                n_j[b] += 1
            for i in clusters[c]:
                est, lo, hi = bt[i] if n_j[i] else (None, None, None)  # never judged: no score, not 0
                score = est if self.aggregate == "bradley_terry" else absolute.get(i)
                rows.append({"id": i, "cluster": c, "score": rounded(score), "ci_low": rounded(lo),
                             "ci_high": rounded(hi), "raw_score": rounded(absolute.get(i)), "n_judgments": n_j[i]})
        n_invalid = sum(1 for r in results if r.status != "ok" or judge.invalid(r))
        diagnostics = judge.diagnostics()
        counts = {"clusters": len(clusters), "judgments": len(judgment_rows), "llm_requests": len(unique),
                  "invalid": n_invalid, "errors": sum(1 for r in results if r.status == "error"), "scored": len(rows),
                  "unscored": sum(1 for r in rows if r["score"] is None)}
        stats = {"judgment": mode, "invalid_rate": round(n_invalid / max(1, len(unique)), 4), **diagnostics}
        dist = {"score": [r["score"] for r in rows if r["score"] is not None],
                ("raw_mean" if mode == "text" else "mean_win_probability"):
                    [r["raw_score"] for r in rows if r["raw_score"] is not None]}
        table = {"columns": ["metric", "value"], "data": [[k, v] for k, v in diagnostics.items()]}
        return ScoreOutput(rows, judgment_rows, counts, stats, dist, {"position_bias": table})


class _TextJudgments:
    """Hard outcomes from the two scores of each call (the reference)."""

    def __init__(self, by_pair: dict, tie_margin: float):
        self.judgments = {p: Judgment(p[0], p[1], *(r.parsed if r.status == "ok" else (None, None)))
                          for p, r in by_pair.items()}
        self.by_pair, self.tie_margin = by_pair, tie_margin

    def invalid(self, result) -> bool:
        return False

    def row(self, a: str, b: str) -> dict:
        j, r = self.judgments[(a, b)], self.by_pair[(a, b)]
        return {"first": a, "second": b, "score_first": j.score_first, "score_second": j.score_second,
                "status": r.status, "cached": r.cached, "cache_key": r.key}

    def comparisons(self, pairs) -> list[tuple[str, str, float]]:
        return outcomes([self.judgments[p] for p in pairs], self.tie_margin)

    def absolute(self, pairs) -> dict[str, float]:
        return raw_means([self.judgments[p] for p in pairs])

    def diagnostics(self) -> dict:
        return order_consistency(self.judgments.values(), self.tie_margin)


class _LogprobJudgments:
    """Soft, position-debiased outcomes: one per pair judged in both orders."""

    def __init__(self, by_pair: dict):
        self.by_pair = by_pair
        self.logit = {p: preference_logit(first_token_logprobs(r.logprobs)) if r.status == "ok" else None
                      for p, r in by_pair.items()}

    def invalid(self, result) -> bool:
        return result.status == "ok" and preference_logit(first_token_logprobs(result.logprobs)) is None

    def soft(self, a: str, b: str) -> tuple[float, float] | None:
        """(P(a beats b), position offset) when both orders of the pair have a logit."""
        lab, lba = self.logit.get((a, b)), self.logit.get((b, a))
        return None if lab is None or lba is None else debias(lab, lba)

    def row(self, a: str, b: str) -> dict:
        r, soft = self.by_pair[(a, b)], self.soft(a, b)
        return {"first": a, "second": b, "logit_first": rounded(self.logit[(a, b)]),
                "p_first_better_debiased": rounded(soft[0]) if soft else None, "status": r.status,
                "raw": r.raw, "cached": r.cached, "cache_key": r.key}

    def comparisons(self, pairs) -> list[tuple[str, str, float]]:
        # Each unordered pair once (from its two orders): the soft outcome of its lexically smaller member.
        return [(a, b, soft[0]) for a, b in pairs if a < b and (soft := self.soft(a, b)) is not None]

    def absolute(self, pairs) -> dict[str, float]:
        wins: dict[str, list[float]] = defaultdict(list)
        for a, b, p in self.comparisons(pairs):
            wins[a].append(p)
            wins[b].append(1.0 - p)
        return {i: sum(v) / len(v) for i, v in wins.items()}

    def diagnostics(self) -> dict:
        """Raw per-order decisions (before debiasing): how often the first position is chosen and how often the two
        orders of a pair agree; plus the mean position offset the debiasing removed."""
        logits = [v for v in self.logit.values() if v is not None]
        both = [(self.logit[(a, b)], self.logit[(b, a)]) for a, b in self.by_pair
                if a < b and self.logit.get((a, b)) is not None and self.logit.get((b, a)) is not None]
        offsets = [(x + y) / 2 for x, y in both]
        return {
            "consistency": sum((x > 0) == (y < 0) for x, y in both) / len(both) if both else None,
            "n_pairs_both_orders": len(both),
            "first_position_win_rate": sum(v > 0 for v in logits) / len(logits) if logits else None,
            "mean_position_offset": round(sum(offsets) / len(offsets), 4) if offsets else None,
            "mean_abs_debiased_logit": round(sum(abs(x - y) / 2 for x, y in both) / len(both), 4) if both else None,
            "n_judgments": len(self.logit), "n_invalid": len(self.logit) - len(logits),
        }
