"""A rung as a rating judge orders by its feature and claims no quality ranking; the default judge is the guard in
front of the length rung and says so (README "Judges": no candidate beat the ladder on held-out labels)."""
from __future__ import annotations

from tacos.judges.base import JudgeContext
from tacos.judges.combined import as_pair_judge
from tacos.judges.rungs import MarkdownCount, ResponseLength
from tacos.records import Record


def test_rungs_order_by_their_feature_and_claim_no_quality():
    rs = [Record.make(0, "Q", "", "short"), Record.make(1, "Q", "", "- a much\n- longer answer"),
          Record.make(2, "Q", "", " ")]
    ctx = JudgeContext(progress=False)
    length = [x.value for x in ResponseLength().rate(rs, ctx)]
    assert length[1] > length[0] and length[2] is None
    assert [x.value for x in ResponseLength(direction=-1.0).rate(rs[:2], ctx)] == [-5.0, -float(len(rs[1].output))]
    assert [x.value for x in MarkdownCount().rate(rs[:2], ctx)] == [0.0, 2.0]
    assert ResponseLength().claims_quality is False and as_pair_judge(ResponseLength()).claims_quality is False


def test_the_default_judge_is_the_guarded_length_rung_and_claims_no_quality():
    from tacos.evaluate_judge import compose

    cfg = compose([])
    assert cfg.scorer.judge.name == "guarded_length" and cfg.scorer.judge.claims_quality is False
    assert cfg.scorer.judge.judge._target_ == "tacos.judges.rungs.ResponseLength"
