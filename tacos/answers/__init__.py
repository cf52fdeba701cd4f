"""Answers: our model's answers in FastChat's model_answer format (stage `infer`), and reading them back. The judging
of answers lives in tacos.benchmarks, the LLM judges in tacos.judges. What the judge stage calls here (answer_files.py,
registry.py) writes no stage file and never calls back into tacos.stage: problems are ValueErrors that say what to do.

    jobs.py          the `infer` config (InferSpec), answer jobs, prompts, seeds, the resumable work file, FastChat rows
    generators.py    the answer generators, chosen by infer.generator._target_: transformers (CPU/GPU), vLLM (offline
                     LLM class), any OpenAI-compatible endpoint; each validates itself and opens a loaded generator
    backends.py      the loaded generators (a model in memory, or the run's LLM session) that answer the jobs
    inference.py     what the infer stage does: model choice, resumable generation, answer files, base model, forecast
    registry.py      the answers registry (<answers_dir>/<model>/<run_name>[-seed<k>]/): baselines by name
    answer_files.py  reading FastChat answer files: ours (the infer stage's), placeholders for forecasts
"""
