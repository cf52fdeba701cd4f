"""The typed records that flow between stages.

Every stage reads and writes JSON Lines of these records; `to_json`/`from_json` are the only
(de)serialisation path so files stay byte-stable (sorted keys, no NaN, UTF-8).
"""
from __future__ import annotations

import errno
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

T = TypeVar("T")


def record_id(instruction: str, input: str, output: str) -> str:
    """Stable content id: the same (instruction, input, output) always gets the same id."""
    h = hashlib.sha256("\x1f".join((instruction, input, output)).encode("utf-8")).hexdigest()
    return "r" + h[:16]


@dataclass(frozen=True)
class Record:
    """One instruction-tuning example of the pool."""

    id: str
    index: int  # row index in the source file (0-based), kept through every stage
    instruction: str
    input: str
    output: str
    source: str = ""  # dataset name the record came from
    # Full ShareGPT conversation when the source had more than one exchange; else None.
    conversations: tuple[tuple[str, str], ...] | None = None

    @classmethod
    def make(cls, index: int, instruction: str, input: str, output: str, **kw: Any) -> "Record":
        return cls(id=record_id(instruction, input, output), index=index, instruction=instruction,
                   input=input, output=output, **kw)


def dumps(obj: Any) -> str:
    """Canonical JSON: sorted keys, no NaN, UTF-8 kept as is."""
    if hasattr(obj, "__dataclass_fields__"):
        obj = asdict(obj)
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False)


class DiskFull(OSError):
    """No space left on the device (or quota exceeded) while writing `path`; the message says what to do."""

    def __init__(self, path: str | Path, code: int = errno.ENOSPC, setting: str = "paths.output_dir"):
        super().__init__(code, f"disk full while writing {path}: free space or set {setting}", str(path))

    def __str__(self) -> str:
        return str(self.strerror)


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Write rows (dataclasses or dicts) as canonical JSON Lines; returns the row count. A full disk raises
    DiskFull naming the file; text that is not valid Unicode (a lone surrogate) a ValueError naming the row."""
    n = 0
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                line = dumps(row)
                try:
                    f.write(line)
                except UnicodeEncodeError as e:
                    raise ValueError(f"{path}: row {n} (0-based) holds text that is not valid Unicode "
                                     f"({e.object[e.start:e.end]!r} at character {e.start}: a lone UTF-16 surrogate, "
                                     f"e.g. from a JSON escape like \\ud800 without its pair); fix the text it "
                                     f"came from") from None
                f.write("\n")
                n += 1
    except OSError as e:
        if is_disk_full(e) and not isinstance(e, DiskFull):
            raise DiskFull(path, e.errno) from e
        raise
    return n


def read_jsonl(path: str | Path, cls: type[T] | None = None) -> list[T] | list[dict]:
    """Read JSON Lines; with `cls` (a dataclass) each row becomes an instance of it."""
    out: list[Any] = []
    for row in iter_jsonl(path):
        out.append(from_dict(cls, row) if cls is not None else row)
    return out


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def from_dict(cls: type[T], row: dict) -> T:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    kw = {k: v for k, v in row.items() if k in names}
    if cls is Record and kw.get("conversations") is not None:
        kw["conversations"] = tuple(tuple(t) for t in kw["conversations"])
    return cls(**kw)  # type: ignore[call-arg]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class TestQuestion:
    """One evaluation prompt of a test set (Koala, Self-Instruct, WizardLM, Vicuna, LIMA, MT-Bench)."""

    question_id: str
    test_set: str
    instruction: str
    input: str = ""
    category: str = ""
    turns: list[str] = field(default_factory=list)  # MT-Bench: both user turns
