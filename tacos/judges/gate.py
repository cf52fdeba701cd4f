"""Is this judge informative? The one gate every judge passes through before its verdicts count (the `gate:` config).

Evidence, keyed by the judge's identity (`judge_key`: its classes, prompts, read-out, models, and the chat LLM's
identity when it uses one) and by the CONTENT of each labelled suite (sha256 of the suite file as it is now):
  * measured: `tacos judge-eval` results of the same judge on the suites named by the rules. Each rule has a `claim`:
    "screening" (does the judge keep out answers that are off-topic, cut or defective?) or "quality" (does it rank
    on-topic answers the way someone else's labels do?), and a `bar`:
      - a number: the lower bound of the 95 % Wilson interval of the judge's agreement over ALL items (no verdict =
        a tie) must be above it (for ratings: of its AUC / Spearman);
      - "best_rung": a one-sided paired test on the same items (tacos.judges.measure) must put the judge above the
        best rung of the ladder of trivial rules (tacos.judges.ladder, fitted on the suite's dev half), p < alpha;
      - a `baseline_*` column of the same measurement (old rules): the lower CI bound above it.
    Every measured rule also fails when more than `max_invalid_rate` of the items got no verdict. A judge that
    declares `claims_quality: false` is held to the screening rules only (and every verdict says so). Old
    measurements lack the new columns (agreement_all, p_vs_best_rung) and fail the rules that need them: re-measure.
  * observed in the run (judges that show two responses in both orders): the orders must agree often enough and
    the first-presented response must not win almost always.
What a stage reports for the gate is built by one function, `gate_stats` (the score stage, the judge stage and
`tacos judge-eval` use it): the judge's key, name, kind, claim, identity, LLM and where the config holds it, and what
it showed in the run (position diagnostics, invalid rate). A stage with several judges (the judge stage: the pair
judge and MT-Bench's grader) lists them in `stats["gate_judges"]`; its verdict is then every judge's.
Measurement files are read in order, later entries replacing earlier ones: the committed table first, then this
machine's own measurements, so a fresh local measurement overrides a committed one. The verdict is computed when a
run ends (tacos.pipeline), never stored with a stage's output: new measurements change it on the next run.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tacos.records import dumps, file_sha256


def judge_key(identity: dict, llm_identity: str | None) -> str:
    """The key measurements of a judge are filed under: its identity plus the chat LLM's when it uses one."""
    blob = json.dumps({"judge": identity, "llm": llm_identity}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def gate_stats(judge: Any, ctx: Any, llm_identity: str | None, judged: Sequence | None = None,
               judge_path: str | None = None) -> dict:
    """What the gate reads about one judge (and `tacos judge-eval` files its measurements under): its key (identity +
    the chat LLM's when it uses one), name, kind, claim, identity and LLM, where the config holds it (`judge_path`:
    what `tacos judge-eval --judge` takes), and, given what it judged in the run (PairVerdicts or Ratings), its
    invalid rate and a pair judge's position diagnostics."""
    identity = judge.identity(ctx)
    llm = llm_identity if judge.uses_llm else None
    pairwise = hasattr(judge, "judge_pairs")
    out = {"judge_key": judge_key(identity, llm), "judge_name": judge.name, "judge_pairwise": pairwise,
           "judge_claims_quality": bool(getattr(judge, "claims_quality", True)),  # false: screening rules only
           "judge_identity": identity, "judge_llm": llm}
    if judge_path:
        out["judge_path"] = judge_path
    if judged:
        invalid = sum(1 for x in judged if (x.p_first if pairwise else x.value) is None)
        out["invalid_rate"] = round(invalid / len(judged), 4)
        if pairwise:
            out.update(judge.diagnostics(judged))
    return out


CLAIMS = ("screening", "quality")
NO_QUALITY_CLAIM = "no quality ranking claimed"


@dataclass
class Rule:
    suite: str  # a suite file name without .jsonl, looked up in GateConfig.suites_dir
    bar: float | str = 0.5  # a number, "best_rung" (a paired test above the ladder's best), or baseline_* (old)
    claim: str = "screening"  # screening | quality (skipped for a judge that claims no quality ranking)
    metric: str | None = None  # default: agreement_all for pairs, spearman for ratings (auc for binary labels)

    def metric_for(self, pairwise: bool) -> str:
        return self.metric or ("agreement_all" if pairwise else "spearman")


@dataclass
class GateConfig:
    min_consistency: float = 0.6
    max_first_position_rate: float = 0.8
    pair_rules: list = field(default_factory=list)  # [Rule | {"suite", "bar"}]
    rating_rules: list = field(default_factory=list)
    suites_dir: str = ""  # where the rules' suite files are (their content hash must match the measurement's)
    measurements: list[str] = field(default_factory=list)  # JSON Lines files, committed first, local last
    on_fail: str = "warn"  # warn (the run ends with a warning; report and W&B mark it) | error
    alpha: float = 0.05  # the one-sided level of the paired test against the best rung
    max_invalid_rate: float = 0.1  # more items without a verdict than this fails the rule
    relevance_rung: bool = True  # `tacos judge-eval` includes the MiniLM relevance rung (~15 s to load the model)

    def validate(self) -> None:
        if self.on_fail not in ("warn", "error"):
            raise ValueError(f"gate.on_fail must be warn or error, not {self.on_fail!r}")
        if not 0 < self.alpha < 1 or not 0 <= self.max_invalid_rate <= 1:
            raise ValueError(f"gate.alpha must be in (0, 1) and gate.max_invalid_rate in [0, 1], got "
                             f"{self.alpha} / {self.max_invalid_rate}")
        for r in self.rules(True) + self.rules(False):
            if not isinstance(r.bar, (int, float)) and r.bar != "best_rung" and not str(r.bar).startswith("baseline_"):
                raise ValueError(f"gate rule for {r.suite}: bar must be a number, best_rung or a baseline_* metric, "
                                 f"not {r.bar!r}")
            if r.claim not in CLAIMS:
                raise ValueError(f"gate rule for {r.suite}: claim must be one of {CLAIMS}, not {r.claim!r}")

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


def verdict(key: str, pairwise: bool, observed: dict, gate: GateConfig, claims_quality: bool = True,
            judge_path: str | None = None) -> dict:
    """{"judge_informative", "judge_gate_reasons", "judge_measured", "quality_claimed", "claim_note"} for a judge
    with this key (`judge_path`: where the config holds it, for the judge-eval command a reason names). A judge no
    rule applies to is not shown informative: it never passes silently."""
    reasons = []
    c, f = observed.get("consistency"), observed.get("first_position_win_rate")
    if c is not None and c < gate.min_consistency:
        reasons.append(f"the two orders of a pair agree {c:.0%} of the time (< {gate.min_consistency:.0%})")
    if f is not None and max(f, 1 - f) > gate.max_first_position_rate:
        reasons.append(f"the {'first' if f >= 0.5 else 'second'}-presented response wins {max(f, 1 - f):.0%} of "
                       f"decided judgments (> {gate.max_first_position_rate:.0%}): position, not quality")
    found = find(gate.measurements, key)
    flag = "--pairs" if pairwise else "--ratings"
    kind = "pair" if pairwise else "rating"
    where = f" --judge {judge_path}" if judge_path and judge_path != "scorer.judge" else ""
    measured, applied = {}, 0
    rules = gate.rules(pairwise)
    for rule in rules:
        if rule.claim == "quality" and not claims_quality:
            continue
        applied += 1
        suite_file = Path(gate.suites_dir) / f"{rule.suite}.jsonl"
        rerun = f"run `tacos judge-eval {flag} {suite_file}{where}` with the same config"
        sha = file_sha256(suite_file) if suite_file.is_file() else "missing"
        m = found.get((rule.suite, sha))
        if m is None:
            stale = any(s == rule.suite for s, _ in found)
            reasons.append(f"{'measured only on an earlier version of' if stale else 'never measured on'} the "
                           f"labelled suite {rule.suite} ({rerun})")
            continue
        metric = rule.metric_for(pairwise)
        needs = f"{metric}_ci" if rule.bar != "best_rung" else "p_vs_best_rung"
        if m.get(needs) is None or m.get(metric) is None:
            reasons.append(f"the measurement on {rule.suite} has no {needs} (measured before the ladder, or not "
                           f"defined there): {rerun}")
            continue
        value, (lo, hi) = m[metric], m.get(f"{metric}_ci") or (None, None)
        entry = {metric: value, f"{metric}_ci": m.get(f"{metric}_ci"), "n": m.get("n"), "claim": rule.claim,
                 "bar_is": rule.bar, "invalid_rate": m.get("invalid_rate")}
        invalid = m.get("invalid_rate") or 0.0
        if invalid > gate.max_invalid_rate:
            reasons.append(f"{rule.suite}: {invalid:.0%} of the items got no verdict (> {gate.max_invalid_rate:.0%})")
        if rule.bar == "best_rung":
            p, best = m["p_vs_best_rung"], m.get("best_rung")
            entry.update({"best_rung": best, "best_rung_value": m.get("best_rung_value"), "p_vs_best_rung": p,
                          "bar": m.get("best_rung_value")})
            if m.get("ladder_metric") not in (None, metric):
                reasons.append(f"{rule.suite}: the ladder was measured on {m.get('ladder_metric')}, the rule reads "
                               f"{metric}")
            elif p >= gate.alpha:
                reasons.append(f"{metric} with labels on {rule.suite} is {value:.2f} (n={m.get('n')}), not shown "
                               f"above the best trivial rung {best} ({m.get('best_rung_value'):.2f}): one-sided "
                               f"paired p = {p:.3f} >= {gate.alpha}")
        else:
            bar = rule.bar if isinstance(rule.bar, (int, float)) else m.get(rule.bar)
            entry["bar"] = bar
            if bar is None:
                reasons.append(f"{rule.suite}: the measurement has no {rule.bar} to compare with")
            elif lo <= bar:
                reasons.append(f"{metric} with labels on {rule.suite} is {value:.2f} (95% CI {lo:.2f} to {hi:.2f}, "
                               f"n={m.get('n')}): not above {rule.bar if isinstance(rule.bar, str) else 'chance'} "
                               f"({bar:.2f})")
        measured[rule.suite] = entry
    if not rules:
        reasons.append(f"no labelled {kind} suite measured for this judge: the gate has no rule for {kind} judges "
                       f"(gate.{kind}_rules)")
    elif not applied:
        reasons.append("no gate rule applies to this judge (it claims no quality ranking and the gate has no "
                       f"screening rule for {kind} judges)")
    return {"judge_informative": not reasons, "judge_gate_reasons": reasons, "judge_measured": measured,
            "quality_claimed": claims_quality, "claim_note": None if claims_quality else NO_QUALITY_CLAIM}


def stage_judges(stats: dict) -> dict[str, dict]:
    """The judges a stage's stats report (config path -> gate_stats): its one judge at the top level (the score
    stage) and / or several under `gate_judges` (the judge stage)."""
    judges = dict(stats.get("gate_judges") or {})
    if stats.get("judge_key"):
        judges = {stats.get("judge_path") or "scorer.judge": stats, **judges}
    return judges


def judge_verdict(stats: dict, gate: GateConfig) -> dict:
    """The verdict on one judge from its gate_stats."""
    return {**verdict(stats["judge_key"], bool(stats.get("judge_pairwise")), stats, gate,
                      claims_quality=bool(stats.get("judge_claims_quality", True)), judge_path=stats.get("judge_path")),
            "judge_key": stats["judge_key"], "judge_name": stats.get("judge_name")}


def combined_verdict(verdicts: dict[str, dict]) -> dict:
    """One stage's verdict from its judges' (config path -> verdict): informative only when every judge is; each
    reason, measurement and claim note names its judge; `judges` keeps every verdict."""
    if len(verdicts) == 1:
        return next(iter(verdicts.values()))
    def named(path: str, v: dict) -> str:
        return f"{v.get('judge_name') or path} ({path})"
    notes = [f"{named(p, v)}: {v['claim_note']}" for p, v in verdicts.items() if v["claim_note"]]
    return {"judge_informative": all(v["judge_informative"] for v in verdicts.values()),
            "judge_gate_reasons": [f"{named(p, v)}: {r}" for p, v in verdicts.items() for r in v["judge_gate_reasons"]],
            "judge_measured": {f"{p}:{suite}": e for p, v in verdicts.items()
                               for suite, e in v["judge_measured"].items()},
            "quality_claimed": all(v["quality_claimed"] for v in verdicts.values()),
            "claim_note": "; ".join(notes) or None, "judges": verdicts}


def record_verdict(run_dir: Path, stage: str, manifest: dict, gate: GateConfig) -> dict | None:
    """The verdict on a completed stage that judged (its stats report a judge: tacos.judges.gate.stage_judges), kept
    in the in-memory manifest (for the run's summary and W&B) and in <run_dir>/gate.json, never in the stage's own
    output: new measurements change it on the next run without recomputing anything. None for a stage without a
    judge."""
    import logging

    judges = stage_judges(manifest.get("stats") or {})
    if not judges:
        return None
    result = {**combined_verdict({path: judge_verdict(s, gate) for path, s in judges.items()}),
              "on_fail": gate.on_fail}
    manifest["gate"] = result
    path = Path(run_dir) / "gate.json"
    verdicts = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    path.write_text(json.dumps({**verdicts, stage: result}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    log = logging.getLogger(__name__)
    if not result["judge_informative"]:
        log.warning("%s: the judge is not shown to be informative: %s", stage, "; ".join(result["judge_gate_reasons"]))
    if result["claim_note"]:
        log.warning("%s: %s (only the gate's screening rules apply to this judge)", stage, result["claim_note"])
    return result
