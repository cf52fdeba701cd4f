"""`tacos judge-eval`: measure a judge against labelled pairs (or ratings) before its verdicts drive anything.

    tacos judge-eval --pairs data/judge_eval/swapped_response_test.jsonl                 # what `score` uses
    tacos judge-eval --pairs F scorer/judge=llm_logprob llm=local_large                  # any Hydra override
    tacos judge-eval --ratings data/judge_eval/mt_bench_single_test.jsonl scorer=single  # a rating judge
    tacos judge-eval --pairs F --judge judge                                              # the judge stage's pair judge

The config is composed from conf/ exactly as `python run.py` composes it (same overrides), and `--judge` names the
judge object to measure by its place in the config (default `scorer.judge`: the judge the score stage uses, any
combination included; a rating judge is compared pair by pair on --pairs). The same object, prompts, read-out,
client, cache and parser as a run. Results go to <out>/judge_eval.json (+ a table on stdout, W&B when
logger=wandb) and are appended to the local measurements file the gate reads (its last `gate.measurements` entry),
filed under the judge's identity key and the suite file's content hash. Re-runs are served from the cache.

Beside the judge, the ladder of trivial rungs (tacos.judges.ladder: always-longer, always-shorter, the length-ratio
rule, more markdown, markdown then ratio, MiniLM relevance; for ratings length / markdown / relevance), fitted on the
suite's dev half (the `_dev` sibling of a `_test` file; a dev file fits on itself, and judge_eval.json says so),
each with its interval, the best of them and the paired one-sided test of the judge against it: what the gate reads.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from tacos.config import flatten, redact, to_container
from tacos.data.preference_pairs import load_preference_pairs, load_single_ratings
from tacos.judges import gate as gates
from tacos.judges import ladder as ladders
from tacos.judges.base import judge_context
from tacos.judges.measure import (cost_columns, judge_pairs, pair_metrics_by_subset, rating_metrics_by_subset,
                                  rating_records)
from tacos.records import file_sha256
from tacos.stage import component, write_json_atomic

PAIR_COLUMNS = ("n", "agreement_all", "agreement_all_ci", "agreement", "agreement_ci", "invalid_rate", "best_rung",
                "best_rung_value", "best_rung_ci", "p_vs_best_rung", "prefers_longer_rate", "tie_rate", "consistency",
                "first_position_win_rate", "mean_answer_mass", "mean_position_offset", "mean_abs_preference")
RATING_COLUMNS = ("n", "spearman", "spearman_ci", "auc", "auc_ci", "pearson", "invalid_rate", "best_rung",
                  "best_rung_value", "best_rung_ci", "p_vs_best_rung")
COST_COLUMNS = ("seconds_per_item", "llm_calls_per_item", "likelihood_passes_per_item", "usd_per_1000")


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose, initialize_config_dir

    from tacos.paths import REPO_ROOT

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def judge_at(cfg, path: str):
    """The judge object at `path` in the config: `scorer.judge` is taken from the instantiated scorer (so a contrastive
    scorer's rating judge is measured as the scorer wraps it); any other path is instantiated as it stands."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    group, _, rest = path.partition(".")
    if path == "scorer.judge":
        judge = component(cfg, "scorer").judge
        if judge is None:
            raise ValueError(f"scorer={cfg.scorer.name} has no judge to measure")
        return judge
    node = OmegaConf.select(cfg, path)
    if node is None:
        raise ValueError(f"--judge {path}: no such node in the config (e.g. scorer.judge)")
    return instantiate(node, _convert_="all")


def evaluate_judge(overrides: list[str], pairs: str | None = None, ratings: str | None = None,
                   judge_path: str = "scorer.judge", out: str | None = None, n_boot: int = 1000) -> dict:
    """Judge every labelled item, write judge_eval.json and record the measurement; returns the result dict."""
    from tacos.llm.calling.session import LLMSession

    cfg = compose(overrides)
    suite_file = Path(pairs or ratings).expanduser().absolute()
    paths, gate = component(cfg, "paths"), component(cfg, "gate")
    judge = judge_at(cfg, judge_path)
    judge.validate()
    seed = int(cfg.seed)
    suite = suite_file.name.split(".")[0]
    out_dir = Path(out) if out else Path(paths.output_dir) / "judge_eval" / f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{suite}"
    out_dir.mkdir(parents=True, exist_ok=True)
    session = LLMSession(component(cfg, "llm"), paths.cache_dir, to_container(cfg.client), cfg.budget.max_usd) \
        if judge.uses_llm else None
    t0 = time.perf_counter()
    try:
        with judge_context(session, paths.cache_dir, seed) as ctx:
            if pairs:
                items = load_preference_pairs(suite_file)
                judgments, verdicts = judge_pairs(judge, items, ctx)
                rungs, ladder = fit_ladder(suite_file, items, True, gate.relevance_rung)
                metrics = pair_metrics_by_subset(judgments, verdicts, judge, n_boot, seed, rungs)
                rows = [{**asdict(j), "orders": [o.as_dict() for o in v.orders], "rungs": {n: p[k] for n, p in rungs.items()}}
                        for k, (j, v) in enumerate(zip(judgments, verdicts))]
            else:
                if not hasattr(judge, "rate"):
                    raise ValueError(f"--ratings grades one answer at a time: {type(judge).__name__} is a pair judge; "
                                     f"measure a rating judge (e.g. scorer=single) or use --pairs")
                items = load_single_ratings(suite_file)
                rated = judge.rate(rating_records(items), ctx)
                scores = [r.value for r in rated]
                rungs, ladder = fit_ladder(suite_file, items, False, gate.relevance_rung)
                metrics = rating_metrics_by_subset(items, scores, n_boot, seed, rungs)
                rows = [{"id": r.id, "subset": r.subset, "rating": r.rating, "score": s.value, "reason": s.reason,
                         "rungs": {n: x[k] for n, x in rungs.items()}} for k, (r, s) in enumerate(zip(items, rated))]
            prices = session.provider.prices() if session is not None and hasattr(session.provider, "prices") \
                else (0.0, 0.0)
            metrics["overall"].update(cost_columns(ctx, len(items), *prices))
            filed = gates.gate_stats(judge, ctx, component(cfg, "llm").identity, judge_path=judge_path)
    finally:
        if session is not None:
            session.close()
    key, identity, llm = filed["judge_key"], filed["judge_identity"], filed["judge_llm"]
    result = {"suite": suite, "suite_file": str(suite_file), "suite_sha256": file_sha256(suite_file),
              "kind": "pairs" if pairs else "ratings", "judge_path": judge_path, "judge_name": judge.name,
              "judge_key": key, "judge": identity, "llm": llm, "seed": seed,
              "claims_quality": filed["judge_claims_quality"], "ladder": ladder,
              "seconds": round(time.perf_counter() - t0, 2), "metrics": metrics}
    write_json_atomic(out_dir / "judge_eval.json", result)
    write_json_atomic(out_dir / "judgments.json", rows)
    if gate.measurements:
        gates.record(gate.local_file, gates.measurement(key, identity, llm, suite, result["suite_sha256"],
                                                        result["kind"], metrics))
    _log_wandb(cfg, out_dir, result)
    result["out_dir"] = str(out_dir)
    return result


def fit_ladder(suite_file: Path, items: list, pairwise: bool, relevance: bool) -> tuple[dict[str, list], dict]:
    """({rung: its prediction per item}, {"fitted_on", "rungs": {rung: fitted parameters}}): every rung fitted on
    the suite's dev half and applied to `items`."""
    fit_file, fitted_on = ladders.dev_half(suite_file)
    load = load_preference_pairs if pairwise else load_single_ratings
    dev = items if fit_file == suite_file else load(fit_file)
    scorer = ladders.minilm_relevance() if relevance else None
    rungs = [r.fit(dev) for r in (ladders.pair_rungs(scorer) if pairwise else ladders.rating_rungs(scorer))]
    return ({r.name: r.predict(items) for r in rungs},
            {"fitted_on": fitted_on, "fit_file": str(fit_file), "rungs": {r.name: r.params() for r in rungs}})


def _log_wandb(cfg, out_dir: Path, result: dict) -> None:
    from hydra.utils import instantiate

    logger = instantiate(cfg.logger)
    logger.start(config=flatten(redact(to_container(cfg))), run_dir=out_dir, name=f"judge-eval-{result['suite']}",
                 group="judge-eval", tags=[f"judge:{result['judge_name']}", f"suite:{result['suite']}"])
    columns = (PAIR_COLUMNS if result["kind"] == "pairs" else RATING_COLUMNS) + COST_COLUMNS
    table = [[s, *(str(m.get(c)) for c in columns)] for s, m in result["metrics"].items()]
    logger.log_stage({"stage": "judge_eval", "stats": {"overall": result["metrics"]["overall"]},
                      "tables": {"judge_eval": {"columns": ["subset", *columns], "data": table}}}, out_dir)
    logger.finish(ok=True)


def format_table(result: dict) -> str:
    """The judge's columns per subset, then the ladder: the judge and every rung (fitted on the dev half), one
    column per subset, each value with its 95 % interval."""
    columns = (PAIR_COLUMNS if result["kind"] == "pairs" else RATING_COLUMNS) + COST_COLUMNS
    head = ["subset", *columns]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for subset, m in result["metrics"].items():
        lines.append(" | ".join([subset] + [_fmt(m.get(c)) for c in columns]))
    overall = result["metrics"]["overall"]
    metric = overall.get("ladder_metric")
    if metric:
        subsets = list(result["metrics"])
        judge_metric = "agreement_all" if result["kind"] == "pairs" else metric
        lines += ["", f"ladder ({metric}; rungs fitted on {result['ladder']['fitted_on']}; p: one-sided paired "
                      f"test of the judge above the subset's best rung)",
                  " | ".join(["", *subsets]), " | ".join("---" for _ in range(len(subsets) + 1)),
                  " | ".join([f"judge {result['judge_name']}"] + [_with_ci(m.get(judge_metric), m.get(
                      f"{judge_metric}_ci")) + f" (p {_fmt(m.get('p_vs_best_rung'))})" for m in
                      result["metrics"].values()])]
        for rung in overall.get("ladder", {}):
            cells = []
            for m in result["metrics"].values():
                r = (m.get("ladder") or {}).get(rung) or {}
                best = "*" if m.get("best_rung") == rung else ""
                cells.append(_with_ci(r.get(metric), r.get(f"{metric}_ci")) + best)
            lines.append(" | ".join([rung, *cells]))
        lines.append("(* the best rung of the subset)")
    if not result.get("claims_quality", True):
        lines.append("this judge claims no quality ranking: only the gate's screening rules apply to it")
    return "\n".join(lines)


def _with_ci(v, ci) -> str:
    return "-" if v is None else f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return f"{v:.3f}" if isinstance(v, float) else str(v)
