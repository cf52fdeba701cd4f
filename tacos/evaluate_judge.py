"""`tacos judge-eval`: measure the configured judge against labelled pairs (or ratings) before it drives anything.

    tacos judge-eval --pairs data/judge_eval/swapped_response_test.jsonl                  # the score stage's judge
    tacos judge-eval --pairs F --source judge                                             # the judge stage's prompt
    tacos judge-eval --ratings data/judge_eval/mt_bench_single_test.jsonl scorer=single scorer.judgment=logprob
    tacos judge-eval --pairs F llm=local_large scorer.judgment=text                       # any Hydra override

The config is composed from conf/ exactly as `python run.py` composes it (same overrides), so the judge measured is
the judge a run would use: the same LLM, prompt files, judgment mode, client, cache and parser. Results go to
<out>/judge_eval.json (+ a table on stdout, W&B when logger=wandb) and are appended to the measurements file that the
score and judge stages' gate reads (gate.measurements[0]). Re-runs are served from the cache.
"""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from tacos.config import flatten, redact, to_container
from tacos.data.preference_pairs import load_preference_pairs, load_single_ratings
from tacos.eval import gate as gates
from tacos.eval.judge_eval import (by_subset, cost_columns, judge_pairs, pair_metrics, pair_requests, parser_for,
                                   single_metrics)
from tacos.records import Record, file_sha256
from tacos.stage import component, write_json_atomic

PAIR_COLUMNS = ("n", "agreement", "agreement_ci", "consistency", "first_position_rate", "prefers_longer_rate",
                "tie_rate", "invalid_rate", "baseline_longer", "baseline_first")
SINGLE_COLUMNS = ("n", "spearman", "spearman_ci", "pearson", "invalid_rate", "baseline_length_spearman")


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose, initialize_config_dir

    from tacos.paths import REPO_ROOT

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def _judge_prompt_hash(cfg, source: str, mode: str) -> str:
    if source == "judge":
        from tacos.prompts import prompts_hash

        return prompts_hash(cfg.judge.system_prompt, cfg.judge.prompt)
    return component(cfg, "scorer").judge_prompt_hash(mode)


def evaluate_judge(overrides: list[str], pairs: str | None = None, ratings: str | None = None, source: str = "score",
                   out: str | None = None, n_boot: int = 1000) -> dict:
    """Judge every labelled item, write judge_eval.json and record the measurement; returns the result dict."""
    from tacos.llm.session import LLMSession

    cfg = compose(overrides)
    suite_file = Path(pairs or ratings).expanduser().absolute()
    paths, gate = component(cfg, "paths"), component(cfg, "gate")
    scorer = component(cfg, "scorer")
    session = LLMSession(component(cfg, "llm"), paths.cache_dir, to_container(cfg.client), cfg.budget.max_usd)
    mode = "text" if source == "judge" else scorer.mode(session.supports_logprobs)
    seed = int(cfg.seed)
    out_dir = Path(out) if out else Path(paths.output_dir) / "judge_eval" / f"{datetime.now():%Y-%m-%d_%H-%M-%S}_" \
        f"{suite_file.name.split('.')[0]}"
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        if pairs:
            items = load_preference_pairs(suite_file)
            results = session.run(pair_requests(items, source, mode, scorer, component(cfg, "judge"), seed),
                                  parser_for(source, mode, scorer), desc=f"judge-eval ({mode}, both orders)")
            judgments = judge_pairs(items, results, mode,
                                    single_scorer=scorer if source == "score" and not scorer.pairwise else None)
            metrics = by_subset(judgments, pair_metrics, n_boot=n_boot, seed=seed)
            rows = [j.__dict__ for j in judgments]
        else:
            if not hasattr(scorer, "value"):
                raise ValueError(f"--ratings grades one answer at a time: use a single-answer scorer (scorer=single), "
                                 f"not scorer={scorer.name}")
            items = load_single_ratings(suite_file)
            records = [Record.make(k, r.instruction, r.input, r.output) for k, r in enumerate(items)]
            parser = scorer.parse if mode == "text" else (lambda raw: raw)
            results = session.run([scorer.request(r, seed, mode) for r in records], parser,
                                  desc=f"judge-eval (single, {mode})")
            scores = [scorer.value(res, mode) for res in results]
            metrics = _single_by_subset(items, scores, n_boot, seed)
            rows = [{"id": r.id, "subset": r.subset, "rating": r.rating, "score": s} for r, s in zip(items, scores)]
        price_in, price_out = session.provider.prices()
        metrics["overall"].update(cost_columns(results, price_in, price_out))
    finally:
        session.close()
    identity, phash = component(cfg, "llm").identity, _judge_prompt_hash(cfg, source, mode)
    suite = suite_file.name.split(".")[0]
    result = {"suite": suite, "suite_file": str(suite_file), "suite_sha256": file_sha256(suite_file),
              "kind": "pairs" if pairs else "ratings", "source": source, "mode": mode, "judge": identity,
              "prompt_hash": phash, "seed": seed, "seconds": round(time.perf_counter() - t0, 2), "metrics": metrics}
    write_json_atomic(out_dir / "judge_eval.json", result)
    write_json_atomic(out_dir / "judgments.json", rows)
    if gate.measurements:
        gates.record(gate.measurements[0], gates.measurement(identity, source, mode, phash, suite,
                                                             result["suite_sha256"], metrics))
    _log_wandb(cfg, out_dir, result)
    result["out_dir"] = str(out_dir)
    return result


def _single_by_subset(items, scores, n_boot: int, seed: int) -> dict:
    import numpy as np

    groups: dict[str, list[int]] = {}
    for k, r in enumerate(items):
        groups.setdefault(r.subset, []).append(k)
    groups["overall"] = list(range(len(items)))
    out = {}
    for name, idx in sorted(groups.items()):
        m = single_metrics([items[k].rating for k in idx], [scores[k] for k in idx], [len(items[k].output) for k in idx])
        boots = []
        rng = np.random.default_rng(seed)
        for _ in range(n_boot if m["spearman"] is not None else 0):
            pick = rng.integers(0, len(idx), len(idx))
            s = single_metrics([items[idx[k]].rating for k in pick], [scores[idx[k]] for k in pick], [0] * len(pick))
            if s["spearman"] is not None:
                boots.append(s["spearman"])
        m["spearman_ci"] = [round(float(np.quantile(boots, 0.025)), 4), round(float(np.quantile(boots, 0.975)), 4)] \
            if boots else None
        out[name] = m
    return out


def _log_wandb(cfg, out_dir: Path, result: dict) -> None:
    from hydra.utils import instantiate

    logger = instantiate(cfg.logger)
    logger.start(config=flatten(redact(to_container(cfg))), run_dir=out_dir, name=f"judge-eval-{result['suite']}",
                 group="judge-eval", tags=[f"judge:{result['judge'].split(':')[0]}", f"mode:{result['mode']}"])
    columns = PAIR_COLUMNS if result["kind"] == "pairs" else SINGLE_COLUMNS
    table = [[s, *(str(m.get(c)) for c in columns)] for s, m in result["metrics"].items()]
    logger.log_stage({"stage": "judge_eval", "stats": {"overall": result["metrics"]["overall"]},
                      "tables": {"judge_eval": {"columns": ["subset", *columns], "data": table}}}, out_dir)
    logger.finish(ok=True)


def format_table(result: dict) -> str:
    columns = PAIR_COLUMNS if result["kind"] == "pairs" else SINGLE_COLUMNS
    extra = ("calls", "seconds_per_1000", "usd_per_1000")
    head = ["subset", *columns, *extra]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for subset, m in result["metrics"].items():
        cells = [subset] + [_fmt(m.get(c)) for c in (*columns, *extra)]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return f"{v:.3f}" if isinstance(v, float) else str(v)
