"""QualityHead: a small logistic head over features the project already computes cheaply (a RatingJudge).

    rating = w . standardised(features(record)) + b      (a logit: higher = more likely a "good" row)

Features (`features()`): the bundled MiniLM embedding of the response, its element-wise product with the embedding of
the instruction (+ input), their cosine, and a handful of length and formatting counts. No likelihood pass: the head
costs one MiniLM embedding per text, like the relevance guard.

Trained by scripts/train_quality_head.py, seeded, byte for byte, on AlpaGasus rows only (tacos.data.splits
source_split == "train"; label: Claude rated the row >= 4.5), never on an instruction of the five test sets, MT-Bench
or AlpacaEval. The weights are a small JSON file in the repository (tacos/judges/weights/quality_head.json) whose
sha256 is part of the judge's identity. What it measured (and so what it may claim) is in README "Judges".
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tacos.data.formats import instruction_text
from tacos.judges.base import JudgeContext, NoScreen, Rating
from tacos.records import Record

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "quality_head.json"

_MARKDOWN_LINE = re.compile(r"^ {0,3}#{1,6}\s|^\s*[-*+]\s+\S|^\s*\d{1,3}[.)]\s+\S|^\s*```", re.M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_WORD = re.compile(r"\w+")

# The scalar features, in order (the embedding blocks come after them).
SCALARS = ("cosine", "log_chars", "log_words", "log_instruction_chars", "log_length_ratio", "has_input", "log_lines",
           "log_markdown", "digit_share", "upper_share", "non_ascii_share", "ends_with_punctuation",
           "starts_upper", "question_marks", "word_overlap")


def scalar_features(instruction: str, output: str) -> list[float]:
    """Length, formatting and overlap counts of one response (cheap, no model)."""
    n = max(len(output), 1)
    words = _WORD.findall(output.lower())
    task_words = set(_WORD.findall(instruction.lower()))
    stripped = output.strip()
    return [
        0.0,  # cosine: filled in from the embeddings
        math.log1p(len(output)),
        math.log1p(len(words)),
        math.log1p(len(instruction)),
        math.log1p(len(output)) - math.log1p(len(instruction)),
        0.0,  # has_input: filled in from the record
        math.log1p(output.count("\n")),
        math.log1p(len(_MARKDOWN_LINE.findall(output)) + len(_BOLD.findall(output))),
        sum(c.isdigit() for c in output) / n,
        sum(c.isupper() for c in output) / n,
        sum(ord(c) > 127 for c in output) / n,
        float(stripped[-1:] in ".!?\"')]}`" if stripped else 0.0),
        float(stripped[:1].isupper()),
        math.log1p(output.count("?")),
        len(task_words & set(words)) / max(len(task_words), 1),
    ]


def features(records: Sequence[Record], instruction_emb: np.ndarray, output_emb: np.ndarray) -> np.ndarray:
    """One row per record: the scalars, the response embedding, instruction x response (element-wise)."""
    rows = []
    for k, r in enumerate(records):
        s = scalar_features(instruction_text(r), r.output)
        s[0] = float(instruction_emb[k] @ output_emb[k])
        s[5] = float(bool(r.input))
        rows.append(s)
    return np.hstack([np.asarray(rows, dtype=np.float64), output_emb.astype(np.float64),
                      (instruction_emb * output_emb).astype(np.float64)])


def embed(records: Sequence[Record], model: str, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    from tacos.method.clustering import embed_texts

    emb = embed_texts([instruction_text(r) for r in records] + [r.output for r in records], model,
                      batch_size=batch_size, progress=False)
    return emb[:len(records)], emb[len(records):]


@dataclass
class QualityHead(NoScreen):
    name: str = "quality_head"
    weights: str = ""  # a weights JSON; "" = the bundled tacos/judges/weights/quality_head.json
    batch_size: int = 64
    claims_quality: bool = True  # it is a quality ranker; README "Judges" says how far the measurements carry it

    uses_llm = False

    def _path(self) -> Path:
        return Path(self.weights).expanduser() if self.weights else DEFAULT_WEIGHTS

    def _load(self) -> dict:
        if not hasattr(self, "_loaded"):
            data = json.loads(self._path().read_text(encoding="utf-8"))
            self._loaded = {"model": data["model"], "mean": np.asarray(data["mean"]), "scale": np.asarray(data["scale"]),
                            "coef": np.asarray(data["coef"]), "intercept": float(data["intercept"]),
                            "sha256": hashlib.sha256(self._path().read_bytes()).hexdigest()}
        return self._loaded

    def validate(self) -> None:
        if not self._path().is_file():
            raise ValueError(f"{self.name}: no weights file {self._path()} (scripts/train_quality_head.py builds it)")
        from tacos.method.clustering import resolve_embedding_model

        resolve_embedding_model(self._load()["model"])

    def identity(self, ctx: JudgeContext) -> dict:
        w = self._load()
        return {"judge": type(self).__name__, "model": w["model"], "weights_sha256": w["sha256"]}

    def requests(self, records, ctx) -> list:
        return []

    def rate(self, records: Sequence[Record], ctx: JudgeContext) -> list[Rating]:
        if not records:
            return []
        w = self._load()
        t0 = time.perf_counter()
        x = features(records, *embed(records, w["model"], self.batch_size))
        logits = ((x - w["mean"]) / w["scale"]) @ w["coef"] + w["intercept"]
        ctx.add_seconds(time.perf_counter() - t0)
        return [Rating(r.id, round(float(z), 6)) if r.output.strip() else Rating(r.id, None, reason="empty response")
                for r, z in zip(records, logits)]
