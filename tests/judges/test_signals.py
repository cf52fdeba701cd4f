"""The likelihood and embedding signals: a known gain gives a known order, IFD screens what the instruction does not
explain, completeness flags a cut response, values are cached, and the guard screens a record out of every pair."""
from __future__ import annotations

import math

import pytest
from fake_lm import FakeLM

from tacos.judges.base import JudgeContext
from tacos.judges.combined import Check, Guard, GuardedPairJudge, RatingPairJudge, WeightedRating, Part, as_pair_judge
from tacos.judges.signals import IFD, Completeness, EmbeddingRelevance, LikelihoodGain, ResponseLikelihood
from tacos.llm.calling.cache import CallCache
from tacos.records import Record


@pytest.fixture
def ctx(tmp_path):
    cache = CallCache(tmp_path / "cache")
    yield JudgeContext(cache=cache, progress=False)
    cache.close()


def rec(i: int, output: str, instruction: str = "Name a colour.") -> Record:
    return Record.make(i, instruction, "", output)


def test_a_known_gain_gives_a_known_order(ctx):
    # explained: the instruction raises every token from -3 to -1 (gain +2); generic: no gain; off: it lowers them
    lm = FakeLM(cond={"blue sky": -1.0, "I know": -1.0, "tax law": -4.0},
                uncond={"blue sky": -3.0, "I know": -1.0, "tax law": -3.0})
    rs = [rec(0, "blue sky"), rec(1, "I know"), rec(2, "tax law")]
    gains = [r.value for r in LikelihoodGain(lm=lm).rate(rs, ctx)]
    assert gains == pytest.approx([2.0, 0.0, -1.0])
    ifd = IFD(lm=lm).rate(rs, ctx)  # PPL(r|i)/PPL(r) = exp(-gain); >= 1: screened, no rating
    assert ifd[0].value == pytest.approx(math.exp(-2.0), abs=1e-6) and ifd[1].value is None and ifd[2].value is None
    assert "IFD" in ifd[2].reason and set(IFD(lm=lm).screen(rs, ctx)) == {rs[1].id, rs[2].id}
    assert [r.value for r in ResponseLikelihood(lm=lm).rate(rs, ctx)] == pytest.approx([-1.0, -1.0, -4.0])
    # compared pair by pair, the higher gain wins with P = sigmoid(difference / scale)
    v = RatingPairJudge(LikelihoodGain(lm=lm), scale=1.0).judge_pairs([(rs[0], rs[2])], ctx)[0]
    assert v.p_first == pytest.approx(1 / (1 + math.exp(-3.0))) and v.points == ((rs[0].id, 2.0), (rs[2].id, -1.0))


def test_likelihood_values_are_cached_and_skip_the_unneeded_pass(ctx):
    lm = FakeLM()
    rs = [rec(0, "one two"), rec(1, "three")]
    Completeness(lm=lm).rate(rs, ctx)
    assert lm.calls == 2  # completeness needs the conditional pass only
    LikelihoodGain(lm=lm).rate(rs, ctx)
    assert lm.calls == 4  # + the two bare-header passes; the conditional ones came from the cache
    LikelihoodGain(lm=lm).rate(rs, ctx)
    assert lm.calls == 4 and ctx.stats["likelihood_cached"] >= 4


def test_completeness_flags_a_response_cut_before_its_end(ctx):
    lm = FakeLM(end={"The capital of France is": -18.0})
    full, cut = rec(0, "The capital of France is Paris."), rec(1, "The capital of France is")
    values = [r.value for r in Completeness(lm=lm).rate([full, cut], ctx)]
    assert values == pytest.approx([-0.1, -18.0])
    guard = Guard([Check(Completeness(lm=lm), min=-8.0, says="stops before its end")])
    assert guard.screen([full, cut], ctx) == {cut.id: "stops before its end (completeness -18.000 < -8.0)"}


def test_embedding_relevance_separates_an_answer_from_a_non_answer(ctx):
    q = "Give three tips for staying healthy."
    good = rec(0, "Eat a balanced diet, exercise regularly and sleep at least seven hours a night.", q)
    off = rec(1, "The French Revolution began in 1789 with the storming of the Bastille.", q)
    non = rec(2, "I don't know.", q)
    values = {r.id: r.value for r in EmbeddingRelevance().rate([good, off, non], ctx)}
    assert values[good.id] > 0.4 and values[off.id] < 0.2 and values[non.id] < 0.2


def test_a_screened_record_loses_every_comparison_without_an_llm_call(ctx):
    lm = FakeLM(cond={"fine answer": -1.0, "other fine": -2.0, "cut": -0.5}, end={"cut": -20.0})
    good, other, cut = rec(0, "fine answer"), rec(1, "other fine"), rec(2, "cut")
    judge = GuardedPairJudge(Guard([Check(Completeness(lm=lm), min=-8.0, says="stops before its end")]),
                             RatingPairJudge(ResponseLikelihood(lm=lm), scale=0.25))
    v = judge.judge_pairs([(cut, good), (good, other), (cut, cut)], ctx)
    assert v[0].p_first == 0.0 and v[0].reason.startswith("screened")
    assert v[1].p_first == pytest.approx(1 / (1 + math.exp(-4.0)))  # -1 vs -2 at scale 0.25
    assert v[2].p_first == 0.5
    assert judge.diagnostics(v)["pairs_decided_by_guard"] == 2
    assert judge.requests([(good, other)], ctx) == []  # no chat LLM anywhere in this judge


def test_weighted_ratings_and_wrapping(ctx):
    lm = FakeLM(cond={"a b": -1.0}, uncond={"a b": -2.0})
    r = rec(0, "a b")
    w = WeightedRating([Part(ResponseLikelihood(lm=lm), 1.0), Part(LikelihoodGain(lm=lm), 2.0)])
    assert w.rate([r], ctx)[0].value == pytest.approx(-1.0 + 2.0 * 1.0)
    assert isinstance(as_pair_judge(w), RatingPairJudge)
    pair = RatingPairJudge(w)
    assert as_pair_judge(pair) is pair


def test_a_record_alone_in_its_cluster_is_rated_by_a_rating_judge(ctx):
    from tacos.strategies.contrastive import ContrastiveScorer

    lm = FakeLM(cond={"a b": -1.0, "c d": -2.0, "e f": -0.5, "cut": -0.1}, end={"cut": -20.0})
    rs = {r.id: r for r in (rec(0, "a b"), rec(1, "c d"), rec(2, "e f"), rec(3, "cut"))}
    ids = list(rs)
    judge = GuardedPairJudge(Guard([Check(Completeness(lm=lm), min=-8.0, says="stops before its end")]),
                             RatingPairJudge(ResponseLikelihood(lm=lm), scale=0.25))
    out = ContrastiveScorer(judge=judge, n_boot=10).score(rs, {0: ids[:2], 1: [ids[2], ids[3]]}, ctx)
    row = {(r["cluster"], r["id"]): r for r in out.rows}
    alone = row[(1, ids[2])]  # its only neighbour was screened: nobody to meet, still rated
    assert alone["score"] == alone["raw_score"] == -0.5
    assert row[(1, ids[3])]["score"] is None and row[(1, ids[3])]["screened"].startswith("stops before its end")
    assert row[(0, ids[0])]["score"] > row[(0, ids[1])]["score"]


def test_a_record_alone_in_one_cluster_and_paired_in_another_is_rated_in_both(ctx):
    """TACOS's membership puts a record in the cluster of each of its tags: alone (among the unscreened) in one, it
    is still that cluster's best."""
    from tacos.strategies.contrastive import ContrastiveScorer

    lm = FakeLM(cond={"a b": -1.0, "c d": -2.0, "cut": -0.1}, end={"cut": -20.0})
    rs = {r.id: r for r in (rec(0, "a b"), rec(1, "c d"), rec(2, "cut"))}
    ids = list(rs)
    judge = GuardedPairJudge(Guard([Check(Completeness(lm=lm), min=-8.0, says="stops before its end")]),
                             RatingPairJudge(ResponseLikelihood(lm=lm), scale=0.25))
    out = ContrastiveScorer(judge=judge, n_boot=10).score(rs, {0: ids[:2], 1: [ids[0], ids[2]]}, ctx)
    row = {(r["cluster"], r["id"]): r for r in out.rows}
    assert row[(0, ids[0])]["score"] == row[(1, ids[0])]["score"] == -1.0  # its rating, in both clusters


def test_a_rating_judges_cluster_order_is_its_rating_order(ctx):
    """A rating judge's records are ranked inside a cluster by their rating exactly (no pairing luck, no refit): the
    scores are the ratings, deterministic, and a screened record stays unscored."""
    from tacos.strategies.contrastive import ContrastiveScorer

    values = {f"r{k}": -k * 0.1 for k in range(12)}  # r0 best ... r11 worst
    values["r5"] = -0.05  # second best
    lm = FakeLM(cond={t: v for t, v in values.items()} | {"cut": 0.0}, end={"cut": -20.0})
    rs = {r.id: r for r in [rec(k, t) for k, t in enumerate([*values, "cut"])]}
    ids = list(rs)
    judge = GuardedPairJudge(Guard([Check(Completeness(lm=lm), min=-8.0, says="stops before its end")]),
                             RatingPairJudge(ResponseLikelihood(lm=lm), scale=0.25))
    clusters = {0: ids[:7] + [ids[-1]], 1: ids[6:12]}
    for seed in (0, 1):
        ctx.seed = seed
        out = ContrastiveScorer(judge=judge, rounds=3, n_boot=10).score(rs, clusters, ctx)
        for c, members in clusters.items():
            rows = [r for r in out.rows if r["cluster"] == c and r["score"] is not None]
            by_score = [r["id"] for r in sorted(rows, key=lambda r: -r["score"])]
            by_rating = sorted([i for i in members if rs[i].output != "cut"], key=lambda i: -values[rs[i].output])
            assert by_score == by_rating
            assert all(r["score"] == r["raw_score"] == pytest.approx(values[rs[r["id"]].output]) for r in rows)
        cut = next(r for r in out.rows if rs[r["id"]].output == "cut")
        assert cut["score"] is None and cut["screened"].startswith("stops before its end")
        assert out.counts["pairs"] == 0 and out.judgments == []
