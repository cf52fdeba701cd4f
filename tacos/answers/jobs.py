"""Answer jobs and FastChat's model_answer format, with a resumable work file.

One AnswerJob per question: the user turns exactly as the model sees them (the training wrapper applied), the sampling
parameters and a per-question seed. Answers are appended to a work file as they are produced and matched back by
(question id, job hash), so a killed run continues where it stopped and a changed prompt or sampling parameter never
reuses a stale answer. The final files follow FastChat llm_judge's layout and row format:
    model_answer/<bench>/<model_id>.jsonl    {question_id, answer_id, model_id, choices: [{index: 0, turns}], tstamp}
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from tacos.records import dumps
from tacos.data.formats import human_turn

log = logging.getLogger(__name__)

# Files a checkpoint folder is fingerprinted by in full; larger files by size and three 1 MiB samples.
_FULL_HASH_BYTES = 64 << 20
_SAMPLE = 1 << 20


class LoadedGenerator(Protocol):
    """A generator with its model loaded (tacos.answers.backends)."""

    errors: list[str]  # questions left unanswered (an endpoint's transport errors; a local model answers every one)

    def generate(self, jobs: Sequence[AnswerJob]) -> Iterator[tuple[AnswerJob, list[str], float | None]]: ...
    def stats(self) -> dict: ...


class AnswerGenerator(Protocol):
    """What the infer stage asks of `infer.generator` (the classes are in tacos.answers.generators)."""

    name: str  # recorded in the manifest
    needs_checkpoint: bool  # answers with a local model folder (infer.model_path or the train stage's checkpoint)
    uses_llm: bool  # answers through the run's `llm` endpoint

    def validate(self) -> None: ...
    def identity(self) -> dict: ...  # its settings that change the answers (keys the resumable work folder)
    def open(self, ctx: Any, model: Path | None, chat_template: str | None) -> LoadedGenerator: ...
    def forecast(self, ctx: Any, jobs: Sequence[AnswerJob]) -> dict: ...


@dataclass(frozen=True)
class QuestionToAnswer:
    """One question a benchmark asks our model (Benchmark.answer_jobs): what to ask and how. The infer stage answers
    it into model_answer/<bench>/<model_id>.jsonl; it knows no benchmark by name."""

    bench: str  # the answer folder (FastChat's data/<bench>); one benchmark may ask several (the five test sets)
    question_id: str
    turns: tuple[str, ...]  # the user turns as the benchmark writes them; turn k+1 follows the model's answer k
    input: str = ""  # the first turn's input (Self-Instruct), wrapped with it in the training wrapper
    temperature: float | None = None  # None: infer.temperature
    max_new_tokens: int | None = None  # None: infer.max_new_tokens
    id_as_int: bool = False  # written as an int in the answer file (FastChat's MT-Bench looks answers up by int id)


@dataclass
class InferSpec:
    """conf/infer/*.yaml: with which model, generator and default sampling the questions of the run's benchmarks
    (the `benchmarks` group) are answered."""

    generator: AnswerGenerator | None = None  # conf/infer/generator/*.yaml: transformers | vllm | openai
    model_path: str | None = None  # None: the checkpoint of this run's `train` stage
    model_id: str = "model"  # the answer files' name; characters other than letters, digits, _ . - become _
    chat_template: str | None = None  # a .jinja file replacing the checkpoint's own chat template
    prompt_wrapper: str = "alpaca_one_line"  # as export.prompt_wrapper: the wrapper the model was trained with
    wrap_first_turn: bool = True  # the first user turn in prompt_wrapper (later turns stay raw, as in the exported
    # data); false: every turn as the benchmark writes it (FastChat gen_model_answer)
    limit: int | None = None  # first N questions of every set (CPU runs)
    # Sampling for a question whose benchmark sets none (MT-Bench sets its own: conf/benchmark/mt_bench.yaml).
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 512
    base_answers: bool = False  # also answer with the model before fine-tuning (judge baseline `base`)

    def __post_init__(self) -> None:
        # The model id names the answer files (as export names the dataset): keep it a safe file name.
        self.model_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(self.model_id)).strip("_") or "model"

    def validate(self) -> None:
        if self.generator is None or isinstance(self.generator, (str, dict)):
            raise ValueError(f"infer.generator must be a generator object (conf/infer/generator/: infer/generator="
                             f"transformers | vllm | openai), not {self.generator!r}")
        self.generator.validate()
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"infer.limit must be a positive number of questions per set or null, got {self.limit}")
        human_turn("x", "", self.prompt_wrapper)  # raises on an unknown wrapper
        if self.chat_template is not None and not Path(self.chat_template).is_file():
            raise ValueError(f"infer.chat_template: {self.chat_template} is not a file")
        if self.uses_checkpoint_path():
            checkpoint_dir(self.model_path)

    def uses_checkpoint_path(self) -> bool:
        """A local model folder named by infer.model_path answers (its content is part of the stage's identity)."""
        return self.generator.needs_checkpoint and self.model_path is not None

    def uses_train_stage(self) -> bool:
        """A local generator without infer.model_path answers with this run's train-stage checkpoint."""
        return self.generator.needs_checkpoint and self.model_path is None

    def uses_llm(self) -> bool:
        """The endpoint generator answers through the run's `llm` endpoint (and its cache)."""
        return self.generator.uses_llm


def checkpoint_dir(model_path: str | Path) -> Path:
    p = Path(model_path).expanduser()
    if (p / "adapter_config.json").is_file() and not (p / "config.json").is_file():
        raise ValueError(f"infer.model_path: {p} holds a LoRA adapter only: merge it into its base model first "
                         f"(llamafactory-cli export) and point infer.model_path at the merged folder")
    if not (p / "config.json").is_file():
        raise ValueError(f"infer.model_path: {p} is not a local model folder (no config.json). Point it at a "
                         f"checkpoint saved by the train stage or by save_pretrained; hub ids are not downloaded.")
    return p


def checkpoint_fingerprint(model_path: str | Path) -> str:
    """A content hash of a model folder that costs seconds even for 26 GB of weights: small files in full, large ones
    by size and three 1 MiB samples (retraining changes every weight, so any sample changes). Top-level files only:
    what from_pretrained loads, not the trainer's intermediate checkpoint-N/ folders."""
    root = checkpoint_dir(model_path)
    h = hashlib.sha256()
    for p in sorted(x for x in root.iterdir() if x.is_file()):
        size = p.stat().st_size
        h.update(f"{p.name}\x00{size}\x00".encode())
        with open(p, "rb") as f:
            if size <= _FULL_HASH_BYTES:
                h.update(f.read())
            else:
                for offset in (0, size // 2, size - _SAMPLE):
                    f.seek(offset)
                    h.update(f.read(_SAMPLE))
    return h.hexdigest()


@dataclass(frozen=True)
class AnswerJob:
    bench: str
    question_id: str
    turns: tuple[str, ...]  # user messages as the model sees them; turn k+1 is asked after the model's answer k
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    id_as_int: bool = False  # how the answer file writes question_id; not part of the answer (not in the key)

    @property
    def key(self) -> str:
        """Everything that determines the answer besides the model: a work-file row is reused only on a match."""
        fields = {k: v for k, v in self.__dict__.items() if k != "id_as_int"}
        return hashlib.sha256(dumps(fields).encode("utf-8")).hexdigest()[:32]


def question_seed(seed: int, bench: str, question_id: str) -> int:
    """A seed per question (torch.manual_seed before it): answers do not depend on the order questions run in."""
    return int(hashlib.sha256(f"{seed}\x00{bench}\x00{question_id}".encode()).hexdigest()[:8], 16)


def make_jobs(spec: InferSpec, asked: Sequence[QuestionToAnswer], seed: int) -> dict[str, list[AnswerJob]]:
    """bench -> its answer jobs, in the order the benchmarks ask: the first turn in the training wrapper, sampling
    as the benchmark sets it or infer's defaults. Two benchmarks asking one question must ask it alike."""
    jobs: dict[str, list[AnswerJob]] = {}
    seen: dict[tuple[str, str], QuestionToAnswer] = {}
    for q in asked:
        if (q.bench, q.question_id) in seen:
            if seen[(q.bench, q.question_id)] != q:
                raise ValueError(f"two benchmarks ask {q.bench}/{q.question_id} differently (turns or sampling); "
                                 f"give one of them another answer folder")
            continue
        seen[(q.bench, q.question_id)] = q
        first = human_turn(q.turns[0], q.input, spec.prompt_wrapper if spec.wrap_first_turn else "none")
        temperature = spec.temperature if q.temperature is None else q.temperature
        max_new = spec.max_new_tokens if q.max_new_tokens is None else q.max_new_tokens
        jobs.setdefault(q.bench, []).append(AnswerJob(
            bench=q.bench, question_id=q.question_id, turns=(first, *q.turns[1:]), temperature=float(temperature),
            top_p=float(spec.top_p), max_new_tokens=int(max_new), seed=question_seed(seed, q.bench, q.question_id),
            id_as_int=q.id_as_int))
    return jobs


class WorkFile:
    """Answers of one model (folder) per bench (file), appended one line per answered question.

    A line cut by a kill is skipped on reading; a question answered twice keeps its last answer."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, bench: str) -> Path:
        return self.folder / f"{bench}.jsonl"

    def load(self, bench: str) -> dict[str, dict]:
        """job key -> work row."""
        p = self.path(bench)
        rows: dict[str, dict] = {}
        if not p.is_file():
            return rows
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s line %d: not JSON (cut by a kill?), skipped; the question is answered again", p, n)
                continue
            rows[row["job"]] = row
        return rows

    def append(self, job: AnswerJob, turns: list[str], tstamp: float | None = None) -> dict:
        """Write one answer at once (one line, flushed) and return its row."""
        row = {"job": job.key, "question_id": job.question_id, "answer_id": answer_id(self.folder.name, job),
               "turns": list(turns), "tstamp": time.time() if tstamp is None else tstamp}
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.path(job.bench), "a", encoding="utf-8") as f:
            f.write(dumps(row) + "\n")
        return row


def answer_id(model_key: str, job: AnswerJob) -> str:
    """Deterministic where FastChat draws a shortuuid: 22 characters derived from the model and the job."""
    return hashlib.sha256(f"{model_key}\x00{job.key}".encode()).hexdigest()[:22]


def fastchat_row(job: AnswerJob, work_row: dict, model_id: str) -> dict:
    """FastChat's model_answer row. The id is an int where the benchmark asks so (MT-Bench: FastChat's judge looks
    answers up by the int of question.jsonl); the five test sets keep the string ids of data/test_sets."""
    qid = work_row["question_id"]
    if job.id_as_int and qid.isdigit():
        qid = int(qid)
    return {"question_id": qid, "answer_id": work_row["answer_id"], "model_id": model_id,
            "choices": [{"index": 0, "turns": work_row["turns"]}], "tstamp": work_row["tstamp"]}


def answer_file(root: Path, bench: str, model_id: str) -> Path:
    return Path(root) / "model_answer" / bench / f"{model_id}.jsonl"
