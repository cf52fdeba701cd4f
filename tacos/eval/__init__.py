"""Evaluation: answers in FastChat's model_answer format (stage `infer`), their judging (stage `judge`) and the
results table (stage `report`, `tacos report`).

    answers.py   the `infer` config (InferSpec), answer jobs, prompts, seeds, the resumable work file, FastChat rows
    backends.py  the generators: transformers (CPU/GPU), vLLM (offline LLM class), any OpenAI-compatible endpoint
    judging.py   pairwise verdicts and their both-order combination, MT-Bench single-answer grading
    results.py   collect judge/selection manifests of a run or a sweep dir into one table
"""
