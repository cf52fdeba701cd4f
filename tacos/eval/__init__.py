"""Evaluation: answers in FastChat's model_answer format (stage `infer`), their judging (stage `judge`) and the
results table (stage `report`, `tacos report`). The stages are glue over these modules.

    answers.py       the `infer` config (InferSpec), answer jobs, prompts, seeds, the resumable work file, FastChat rows
    generators.py    the answer generators, chosen by infer.generator._target_: transformers (CPU/GPU), vLLM (offline
                     LLM class), any OpenAI-compatible endpoint; each validates itself and opens a loaded generator
    backends.py      the loaded generators (a model in memory, or the run's LLM session) that answer the jobs
    inference.py     what the infer stage does: model choice, resumable generation, answer files, base model, forecast
    registry.py      the answers registry (<answers_dir>/<model>/<run_name>[-seed<k>]/): baselines by name
    answer_files.py  reading FastChat answer files: ours (the infer stage's), placeholders for forecasts
    baselines.py     resolving judge.baselines entries (files, run dirs, answer folders, registered names)
    judge.py         the `judge` config (JudgeSpec), what each judge.kind runs, the stage's inputs and forecast
    pairwise.py      pairwise judging in both orders: requests, verdict files, statistics per baseline and test set
    mt_bench.py      MT-Bench single-answer grading as FastChat llm_judge (prompts, judgment file)
    judging.py       pairwise verdicts and their both-order combination, MT-Bench rules (pure, no I/O)
    results.py       collect judge/selection manifests of a run or a sweep dir into one table
"""
