"""Is this judge informative? The one gate every judge passes through before its verdicts count (the `gate:` config).

Evidence, keyed by the judge's identity (`judge_key`: its classes, prompts, read-out, models, and the chat LLM's
identity when it uses one) and by the CONTENT of each labelled suite (sha256 of the suite file as it is now):
  * measured: `tacos judge-eval` results of the same judge on the suites named by the rules. A pair judge must
    clear every `pair_rules` entry: the lower bound of its 95 % agreement CI above the bar (a number, or the name
    of a baseline column of the same measurement, e.g. `baseline_longer`: beat always-the-longer-answer). A rating
    judge must clear every `rating_rules` entry the same way on its Spearman CI (bar e.g.
    `baseline_length_spearman`: beat what length alone correlates).
  * observed in the run (judges that show two responses in both orders): the orders must agree often enough and
    the first-presented response must not win almost always.
Measurement files are read in order, later entries replacing earlier ones: the committed table first, then this
machine's own measurements, so a fresh local measurement overrides a committed one. The verdict is computed when a
run ends (tacos.pipeline), never stored with a stage's output: new measurements change it on the next run.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from tacos.records import dumps, file_sha256


def judge_key(identity: dict, llm_identity: str | None) -> str:
    """The key measurements of a judge are filed under: its identity plus the chat LLM's when it uses one."""
    blob = json.dumps({"judge": identity, "llm": llm_identity}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


@dataclass
class Rule:
    suite: str  # a suite file name without .jsonl, looked up in GateConfig.suites_dir
    bar: float | str = 0.5  # a number, or a metric of the same measurement (baseline_longer, ...)


@dataclass
class GateConfig:
    min_consistency: float = 0.6
    max_first_position_rate: float = 0.8
    pair_rules: list = field(default_factory=list)  # [Rule | {"suite", "bar"}]
    rating_rules: list = field(default_factory=list)
    suites_dir: str = ""  # where the rules' suite files are (their content hash must match the measurement's)
    measurements: list[str] = field(default_factory=list)  # JSON Lines files, committed first, local last
    on_fail: str = "warn"  # warn (the run ends with a warning; report and W&B mark it) | error

    def validate(self) -> None:
        if self.on_fail not in ("warn", "error"):
            raise ValueError(f"gate.on_fail must be warn or error, not {self.on_fail!r}")
        for r in self.rules(True) + self.rules(False):
            if not isinstance(r.bar, (int, float)) and not str(r.bar).startswith("baseline_"):
                raise ValueError(f"gate rule for {r.suite}: bar must be a number or a baseline_* metric, "
                                 f"not {r.bar!r}")

    def rules(self, pairwise: bool) -> list[Rule]:
        return [r if isinstance(r, Rule) else Rule(**r) for r in (self.pair_rules if pairwise else self.rating_rules)]

    @property
    def local_file(self) -> str:
        """Where `tacos judge-eval` appends (the last file: it overrides the committed ones)."""
        return self.measurements[-1]


def measurement(key: str, identity: dict, llm_identity: str | None, suite: str, suite_sha256: str, kind: str,
                metrics: dict) -> dict:
    return {"judge_key": key, "judge": identity, "llm": llm_identity, "suite": suite, "suite_sha256": suite_sha256,
            "kind": kind, "metrics": metrics}


def record(path: str | Path, entry: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as f:
        f.write(dumps(entry) + "\n")


def find(files: list[str | Path], key: str) -> dict[tuple[str, str], dict]:
    """(suite, suite_sha256) -> overall metrics of the latest measurement of this judge (later files win)."""
    found: dict[tuple[str, str], dict] = {}
    for f in files:
        p = Path(f)
        if not p.is_file():
            continue
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            if e.get("judge_key") == key:
                found[(e["suite"], e.get("suite_sha256", ""))] = e["metrics"].get("overall", e["metrics"])
    return found


def verdict(key: str, pairwise: bool, observed: dict, gate: GateConfig) -> dict:
    """{"judge_informative", "judge_gate_reasons", "judge_measured"} for a judge with this key."""
    reasons = []
    c, f = observed.get("consistency"), observed.get("first_position_win_rate")
    if c is not None and c < gate.min_consistency:
        reasons.append(f"the two orders of a pair agree {c:.0%} of the time (< {gate.min_consistency:.0%})")
    if f is not None and max(f, 1 - f) > gate.max_first_position_rate:
        reasons.append(f"the {'first' if f >= 0.5 else 'second'}-presented response wins {max(f, 1 - f):.0%} of "
                       f"decided judgments (> {gate.max_first_position_rate:.0%}): position, not quality")
    found = find(gate.measurements, key)
    metric, flag = ("agreement", "--pairs") if pairwise else ("spearman", "--ratings")
    measured = {}
    for rule in gate.rules(pairwise):
        suite_file = Path(gate.suites_dir) / f"{rule.suite}.jsonl"
        sha = file_sha256(suite_file) if suite_file.is_file() else "missing"
        m = found.get((rule.suite, sha))
        if m is None or not m.get(f"{metric}_ci"):
            stale = any(s == rule.suite for s, _ in found)
            reasons.append(f"{'measured only on an earlier version of' if stale else 'never measured on'} the "
                           f"labelled suite {rule.suite} (run `tacos judge-eval {flag} {suite_file}` with the same "
                           f"config)")
            continue
        lo, hi = m[f"{metric}_ci"]
        bar = rule.bar if isinstance(rule.bar, (int, float)) else m.get(rule.bar)
        measured[rule.suite] = {metric: m[metric], f"{metric}_ci": [lo, hi], "n": m.get("n"), "bar": bar,
                                "bar_is": rule.bar}
        if bar is None:
            reasons.append(f"{rule.suite}: the measurement has no {rule.bar} to compare with")
        elif lo <= bar:
            reasons.append(f"{metric} with labels on {rule.suite} is {m[metric]:.2f} (95% CI {lo:.2f} to {hi:.2f}, "
                           f"n={m.get('n')}): not above {rule.bar if isinstance(rule.bar, str) else 'chance'} "
                           f"({bar:.2f})")
    return {"judge_informative": not reasons, "judge_gate_reasons": reasons, "judge_measured": measured}


def record_verdict(run_dir: Path, stage: str, manifest: dict, gate: GateConfig) -> dict | None:
    """The verdict on a completed stage that judged (its stats carry a judge_key), kept in the in-memory manifest
    (for the run's summary and W&B) and in <run_dir>/gate.json, never in the stage's own output: new measurements
    change it on the next run without recomputing anything. None for a stage without a judge."""
    import logging

    stats = manifest.get("stats") or {}
    if not stats.get("judge_key"):
        return None
    result = {**verdict(stats["judge_key"], bool(stats.get("judge_pairwise")), stats, gate),
              "judge_key": stats["judge_key"], "on_fail": gate.on_fail}
    manifest["gate"] = result
    path = Path(run_dir) / "gate.json"
    verdicts = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    path.write_text(json.dumps({**verdicts, stage: result}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if not result["judge_informative"]:
        logging.getLogger(__name__).warning("%s: the judge is not shown to be informative: %s", stage,
                                            "; ".join(result["judge_gate_reasons"]))
    return result
