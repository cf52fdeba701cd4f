"""Is this judge informative? The gate every `score` and `judge` manifest records.

Two kinds of evidence:
  * measured: `tacos judge-eval` results of the SAME judge (LLM identity, prompt bytes, judgment mode) on labelled
    suites, kept in measurement files (JSON Lines). The judge is informative only if, on every suite in
    `required_suites`, the lower bound of its 95 % agreement CI is above `min_agreement_ci_low` (chance = 0.5).
  * observed at run time (text judgments): the two orders of a pair must agree often enough (`min_consistency`) and
    the first-presented response must not win almost always (`max_first_position_rate`). Log-probability judgments
    cancel the position pull by construction, so only the measured evidence applies to them.
A judge that fails the gate still runs (the run ends with a warning naming the numbers, the report and W&B mark the
results) unless `on_fail: error`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tacos.records import dumps


@dataclass
class GateConfig:
    min_consistency: float = 0.6
    max_first_position_rate: float = 0.8
    min_agreement_ci_low: float = 0.5
    required_suites: list[str] = field(default_factory=lambda: ["swapped_response_test", "mt_bench_pair_test"])
    required_single_suites: list[str] = field(default_factory=lambda: ["mt_bench_single_test"])
    measurements: list[str] = field(default_factory=list)  # JSON Lines files written by `tacos judge-eval`
    on_fail: str = "warn"  # warn | error

    def validate(self) -> None:
        if self.on_fail not in ("warn", "error"):
            raise ValueError(f"gate.on_fail must be warn or error, not {self.on_fail!r}")


def measurement(identity: str, source: str, mode: str, prompt_hash: str, suite: str, suite_sha256: str,
                metrics: dict) -> dict:
    return {"judge": identity, "source": source, "mode": mode, "prompt_hash": prompt_hash, "suite": suite,
            "suite_sha256": suite_sha256, "metrics": metrics}


def record(path: str | Path, entry: dict) -> None:
    """Append one measurement (the latest entry for a judge, prompt, mode and suite wins on lookup)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as f:
        f.write(dumps(entry) + "\n")


def find(files: list[str | Path], identity: str, prompt_hash: str, mode: str) -> dict[str, dict]:
    """suite -> overall metrics of the latest measurement of this judge, prompt and mode (files in order: a later
    file's entry replaces an earlier one's)."""
    found: dict[str, dict] = {}
    for f in files:
        p = Path(f)
        if not p.is_file():
            continue
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            if (e.get("judge"), e.get("prompt_hash"), e.get("mode")) == (identity, prompt_hash, mode):
                found[e["suite"]] = e["metrics"].get("overall", e["metrics"])
    return found


def judge_gate(stats: dict, mode: str, measured: dict[str, dict], gate: GateConfig, single: bool = False) -> dict:
    """{"judge_informative", "judge_gate_reasons", "judge_measured_agreement"} for a manifest's stats. `single`: a
    single-answer scorer, measured by the Spearman correlation of its scores with labelled ratings."""
    reasons = []
    if mode == "text":
        c, f = stats.get("consistency"), stats.get("first_position_win_rate")
        if c is not None and c < gate.min_consistency:
            reasons.append(f"the two orders of a pair agree {c:.0%} of the time (< {gate.min_consistency:.0%})")
        if f is not None and max(f, 1 - f) > gate.max_first_position_rate:
            reasons.append(f"the {'first' if f >= 0.5 else 'second'}-presented response wins {max(f, 1 - f):.0%} "
                           f"of decided judgments (> {gate.max_first_position_rate:.0%}): position, not quality")
    # single-answer scorers: Spearman with labelled ratings above 0; pairwise judges: agreement above chance
    metric, chance, suites, flag = (("spearman", 0.0, gate.required_single_suites, "--ratings") if single else
                                    ("agreement", gate.min_agreement_ci_low, gate.required_suites, "--pairs"))
    measured_here = {}
    for suite in suites:
        m = measured.get(suite)
        if m is None or not m.get(f"{metric}_ci"):
            reasons.append(f"never measured on the labelled suite {suite} (run `tacos judge-eval {flag} "
                           f"data/judge_eval/{suite}.jsonl` with the same llm and scorer)")
            continue
        lo, hi = m[f"{metric}_ci"]
        measured_here[suite] = {metric: m[metric], f"{metric}_ci": [lo, hi], "n": m.get("n")}
        if lo <= chance:
            reasons.append(f"{metric} with labels on {suite} is {m[metric]:.2f} (95% CI {lo:.2f} to {hi:.2f}, "
                           f"n={m.get('n')}): not above chance ({chance:.2f})")
    return {"judge_informative": not reasons, "judge_gate_reasons": reasons,
            "judge_measured_agreement": measured_here}
