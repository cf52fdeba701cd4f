"""Evaluation: answers in FastChat's model_answer format (stage `infer`), their judging (stage `judge`) and the
results table (stage `report`, `tacos report`). The stages are glue over these modules; the benchmarks themselves are
in tacos.benchmarks and the LLM judges in tacos.judges. What the judge stage calls here (judge.py, answer_files.py,
baselines.py, registry.py) writes no stage file and never calls back into tacos.stage: problems are ValueErrors that
say what to do.

    answers.py       the `infer` config (InferSpec), answer jobs, prompts, seeds, the resumable work file, FastChat rows
    generators.py    the answer generators, chosen by infer.generator._target_: transformers (CPU/GPU), vLLM (offline
                     LLM class), any OpenAI-compatible endpoint; each validates itself and opens a loaded generator
    backends.py      the loaded generators (a model in memory, or the run's LLM session) that answer the jobs
    inference.py     what the infer stage does: model choice, resumable generation, answer files, base model, forecast
    registry.py      the answers registry (<answers_dir>/<model>/<run_name>[-seed<k>]/): baselines by name
    answer_files.py  reading FastChat answer files: ours (the infer stage's), placeholders for forecasts
    baselines.py     resolving the pairwise benchmark's baselines (files, run dirs, answer folders, registered names)
    judge.py         the `judge` config (JudgeSpec): the pair judge and the benchmarks (tacos.benchmarks) to run,
                     what they ask infer, their identity, forecast and one run over them
    results.py       collect judge/selection manifests of a run or a sweep dir into one table
"""
