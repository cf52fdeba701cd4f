"""LLM judging and the signals that stand in for it, in one home: every judge the score stage, `tacos judge-eval` and
the gate use.

    base.py        what a judge is: PairJudge (which of two records is better?) and RatingJudge (how good is one?),
                   PairVerdict (an OrderResult per presentation order) / Rating, JudgeContext (the run's LLM
                   session, the call cache, the seed)
    orders.py      two presentation orders -> one verdict (the reference's win/tie/lose rule; log-odds debiasing)
    readout.py     the read-out objects (TextReadout, LogprobReadout, AutoReadout: `readout:` of an LLM judge) and
                   a one-token answer read from log-probabilities, over the answer tokens only
    parsers.py     how a text answer is read (JSON scores, "8 7" first lines)
    llm_pair.py    LLMPairJudge: an LLM shown two records, both orders, text or log-probability read-out
    llm_rating.py  LLMRatingJudge: an LLM grades one record (JSON score or expected digit)
    signals.py     rating judges without a chat LLM: embedding relevance, likelihood gain, IFD, response likelihood,
                   completeness (tacos.llm.likelihoods.likelihood)
    combined.py    Guard + GuardedPairJudge / GuardedRatingJudge, RatingPairJudge, WeightedRating
    gate.py        is a judge informative? gate_stats (what a stage reports), measurements keyed by judge identity
                   and suite content, rules per claim
    measure.py     agreement with labelled pairs, correlation / AUC with labelled ratings (what `tacos judge-eval`
                   reports), the ladder columns beside them
    ladder.py      the trivial rungs a judge must beat (always-longer, length ratio, markdown, relevance, ...)
    statistics.py  Wilson intervals, AUC + DeLong, the paired one-sided tests against the best rung

Adding a judge (an hour): write one class with `name`, `uses_llm`, `validate()`, `identity(ctx)`,
`requests(items, ctx)`, `screen(records, ctx)` and either `rate(records, ctx) -> [Rating]` or
`judge_pairs(pairs, ctx) -> [PairVerdict]` (+ `diagnostics(verdicts)`); add one YAML under conf/scorer/judge/ with its
`_target_`; measure it (`tacos judge-eval --pairs data/judge_eval/<suite>_dev.jsonl scorer/judge=NAME`, then the
`_test` halves); use it (`python run.py scorer/judge=NAME`). A rating judge works in the contrastive scorer too (the
higher rating wins each comparison). tests/judges/ shows each kind with a scripted model.
"""
