"""What a benchmark is: an evaluation task that owns its evaluation end to end (as lm-evaluation-harness's Task):
what our model is asked and how (`answer_jobs`: questions, turns, sampling; the infer stage answers them), how the
answers are judged (`run`, with what it gets, BenchmarkRun, and gives back, BenchmarkResult) and what the report shows
(`summary`). A benchmark reads data and our answers and calls judges; it never writes a file: the stage writes the
rows, documents and charts of its result into the stage folder. A new benchmark is three files: its class, its
conf/benchmark/<name>.yaml and its data (docs/evaluation.md, "Adding a benchmark")."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from tacos.answers.jobs import QuestionToAnswer
from tacos.judges.base import JudgeContext, PairVerdict, Rating


@dataclass
class BenchmarkRun:
    """Everything a benchmark works with in one judge stage run (or its forecast)."""

    infer_dir: Path  # the infer stage's folder: our answers in model_answer/<bench>/<model_id>.jsonl
    model_id: str | None  # our answer files' name (None: the only file there)
    data_dir: Path
    limit: int | None  # judge only the first N questions of every set (CPU runs)
    seed: int
    pair_judge: Any  # tacos.judges.base.PairJudge: the run's `judge` (its two-answer judge)
    jctx: JudgeContext  # the run's LLM session and call cache
    judge_name: str  # the judge's file-safe name (FastChat's judgment file and rows)
    llm_identity: str
    answered: bool = True  # False in a forecast before infer ran: every question assumed answered by placeholders


@dataclass(frozen=True)
class JsonLines:
    """A file of rows, one canonical JSON object a line (tacos.records.write_jsonl)."""

    rows: list


@dataclass(frozen=True)
class JsonDocument:
    """A file holding one JSON value, indented, keys sorted (tacos.stage.write_json_atomic)."""

    value: Any


@dataclass(frozen=True)
class Chart:
    """A chart for the stage to draw: `plot(data, <stage folder>/<path>, title)` (a tacos.plots function)."""

    path: str
    plot: Callable[..., Any]
    data: Any
    title: str = ""


@dataclass
class BenchmarkResult:
    """What a benchmark run gives the stage. `files`: path relative to the stage folder (by convention under the
    benchmark's own folder) -> JsonLines or JsonDocument; `counts` and `stats` are merged into the manifest's;
    `tables` go to W&B; `pair_verdicts` are the pair judge's verdicts (the gate's observed position bias);
    `ratings` are the benchmark's own rating judge's (its `judge`: the gate judges it as well); `skipped`: why
    nothing was judged (e.g. no baseline registered yet), or ""."""

    counts: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    files: dict[str, JsonLines | JsonDocument] = field(default_factory=dict)
    tables: dict[str, dict] = field(default_factory=dict)
    charts: list[Chart] = field(default_factory=list)
    pair_verdicts: list[PairVerdict] = field(default_factory=list)
    ratings: list[Rating] = field(default_factory=list)
    skipped: str = ""


@dataclass(frozen=True)
class ReportRow:
    """One row a benchmark adds to the results table (`tacos report`): against `vs` (a baseline or reference model;
    "" when the benchmark compares against none: its row is joined to every other row of the run), `columns` for
    report.csv (name -> number), `cells` for report.md (header -> text)."""

    vs: str
    columns: dict[str, Any]
    cells: dict[str, str]


def cell(v: Any) -> str:
    """A number as report.md shows it: floats with 2 decimals, None as a dash."""
    if v is None:
        return "–"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


@runtime_checkable
class Benchmark(Protocol):
    name: str  # its folder in the stage folder and its key in the manifest's stats
    uses_pair_judge: bool  # judged by the run's pair judge (`judge`; its verdicts feed the gate)

    def validate(self) -> None: ...  # before any work: its settings and data files
    def identity(self, data_dir: Path) -> dict: ...  # the files, prompts and baselines its output depends on
    # What the infer stage answers: every question with its turns and sampling (None: infer's defaults); `limit`: the
    # first N of each of its question sets (infer.limit).
    def answer_jobs(self, data_dir: Path, limit: int | None) -> list[QuestionToAnswer]: ...
    def requests(self, run: BenchmarkRun) -> tuple[list, bool]: ...  # (LLM requests it would make, exact?)
    def run(self, run: BenchmarkRun) -> BenchmarkResult: ...
    def summary(self, stats: dict) -> list[ReportRow]: ...  # its rows of the report, from its result's stats


def table(columns: Sequence[str], data: list[list]) -> dict:
    return {"columns": list(columns), "data": data}
