"""Benchmarks the judge stage runs: each a class with a small typed interface (tacos.benchmarks.base.Benchmark),
configured by one YAML in conf/benchmark/ and listed in a `benchmarks` preset (conf/benchmarks/*.yaml).

    base.py                 the protocol, what a benchmark gets (BenchmarkRun) and returns (BenchmarkResult)
    suite.py                the judge stage's spec (JudgeSpec, `judging`): the pair judge (`judge`) and the benchmarks
                            (`benchmarks`), what they ask infer, their identity, forecast and one run over them
    baselines.py            resolving the pairwise benchmark's baselines (files, run dirs, answer folders, names)
    report.py               collect judge/selection manifests of a run or a sweep dir into one table (`tacos report`)
    pairwise.py             our answers vs baselines' on the five test sets, the pair judge in both orders
    stats.py                win / tie / lose statistics with a bootstrap CI (pure)
    mt_bench.py             MT-Bench single-answer grading (FastChat llm_judge files; the grader: tacos.judges.fastchat)
    alpaca_eval.py          AlpacaEval 2: our answers vs gpt4_1106_preview's on 805 instructions, the pair judge
    alpaca_eval_metrics.py  AlpacaEval's win rate and length-controlled win rate (ported from alpaca_eval 0.6.6)

A new benchmark is a class here (validate, identity, questions, requests, run, summary), a YAML in conf/benchmark/
with its _target_, and its data; the infer stage answers its questions, the stage writes its result and its report rows
(`summary`: the report shows them, it knows no benchmark by name; evaluate/README.md).
"""
