"""Load an instruction pool into `Record`s.

Accepted files: a JSON array or JSON Lines (optionally gzip-compressed) of Alpaca rows
(`instruction`, `input`?, `output`), Evol-Instruct rows (`instruction`, `output`) or ShareGPT/FastChat
rows (`conversations`: [{from, value}] or [{role, content}]); or a Hugging Face dataset by name, which also stands
in for a missing pool file that has a hub copy (`hub_fallback`, tacos.data.hub).
Text is kept byte for byte. Every problem raises `DataError` naming the file, the row and the fix,
before anything is returned.
"""
from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tacos.data.formats import unwrap_alpaca_one_line
from tacos.data.hub import hf_name_hint, load_hub_dataset, missing_file_hint
from tacos.data.pool_text import DataError, check_unicode, read_pool_text
from tacos.paths import REPO_ROOT, BUNDLED_DATA_DIR
from tacos.records import Record, record_id

log = logging.getLogger(__name__)

FORMATS = ("auto", "alpaca", "evol_instruct", "sharegpt")
ON_DUPLICATE = ("error", "drop")

# ShareGPT speaker names -> our two roles; "system" turns are not exchanges and are skipped.
_ROLES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt", "chatgpt": "gpt",
          "bard": "gpt", "model": "gpt", "system": "system"}


def sample_pool_path() -> Path:
    return BUNDLED_DATA_DIR / "sample" / "alpaca_sample.jsonl.gz"


@dataclass
class PoolSource:
    """Where the pool comes from (Hydra-instantiated from conf/dataset/*.yaml).

    With neither `path` nor `hf_name` set, the bundled sample pool (data/sample/) is used. When the file `path`
    names does not exist, `hub_fallback` (a Hugging Face dataset with the same rows in the same order) is loaded
    instead: the same records, hence the same ids.
    """

    name: str = "sample"
    path: str | None = None
    format: str = "auto"
    hf_name: str | None = None
    hf_split: str = "train"
    limit: int | None = None
    max_row_bytes: int = 1_000_000
    on_duplicate: str = "error"
    unwrap_alpaca_prompt: bool = True
    hub_fallback: str | None = None  # a Hugging Face dataset name; its split is hf_split
    path_env: str | None = None  # the environment variable that sets `path`, named in the missing-file fix
    expected_rows: int | None = None  # the pool's known size: a dry run that cannot read the pool forecasts this many

    def load(self, seed: int = 0) -> list[Record]:
        kw = dict(name=self.name, limit=self.limit, seed=seed, max_row_bytes=self.max_row_bytes,
                  on_duplicate=self.on_duplicate, unwrap_alpaca_prompt=self.unwrap_alpaca_prompt)
        if self.path and self.hf_name:
            raise DataError(f"dataset {self.name!r}: set either dataset.path ({self.path!r}) or "
                            f"dataset.hf_name ({self.hf_name!r}), not both.")
        if self.hf_name:
            return load_hf_records(self.hf_name, self.hf_split, self.format, **kw)
        if self.path and self.hub_fallback and find_file(self.path) is None:
            missing = Path(self.path).expanduser().absolute()
            log.warning("%s does not exist: loading its copy %s from the Hugging Face hub (cached after the first "
                        "download)", missing, self.hub_fallback)
            return load_hf_records(self.hub_fallback, self.hf_split, self.format, **kw,
                                   unavailable_hint=missing_file_hint(self.name, missing, self.path_env))
        return load_records(self.path or sample_pool_path(), self.format, **kw)


def load_records(path: str | Path, format: str = "auto", *, name: str = "", limit: int | None = None,
                 seed: int = 0, max_row_bytes: int = 1_000_000, on_duplicate: str = "error",
                 unwrap_alpaca_prompt: bool = True) -> list[Record]:
    """Records of a local .json/.jsonl(.gz) file; `index` = 0-based row in the file, `source` = name."""
    _check_options(format, limit, on_duplicate, max_row_bytes, where=str(path))
    file = resolve_path(path)
    rows = _read_rows(file, max_row_bytes)
    return _to_records(rows, format, source=name or file.name.split(".")[0], where=str(file), limit=limit,
                       seed=seed, on_duplicate=on_duplicate, unwrap=unwrap_alpaca_prompt)


def load_hf_records(hf_name: str, split: str = "train", format: str = "auto", *, name: str = "",
                    limit: int | None = None, seed: int = 0, max_row_bytes: int = 1_000_000,
                    on_duplicate: str = "error", unwrap_alpaca_prompt: bool = True,
                    unavailable_hint: str | None = None) -> list[Record]:
    """Records of a Hugging Face dataset; offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) is respected.
    `unavailable_hint`: what the error says to do when the dataset cannot be loaded."""
    where = f"Hugging Face dataset {hf_name!r} (split {split!r})"
    _check_options(format, limit, on_duplicate, max_row_bytes, where=where)
    ds = load_hub_dataset(hf_name, split, where, unavailable_hint or hf_name_hint())
    rows = []
    for k, row in enumerate(ds):
        loc = f"{where}, row {k} (0-based)"
        _check_size(len(json.dumps(row, ensure_ascii=False, default=str).encode("utf-8")), max_row_bytes, loc)
        rows.append((row, loc))
    return _to_records(rows, format, source=name or hf_name, where=where, limit=limit, seed=seed,
                       on_duplicate=on_duplicate, unwrap=unwrap_alpaca_prompt)


def _check_options(format: str, limit: int | None, on_duplicate: str, max_row_bytes: int, where: str) -> None:
    if format not in FORMATS:
        raise DataError(f"{where}: unknown dataset.format {format!r}; valid: {', '.join(FORMATS)} "
                        "(JSON Lines of any of these use the same names).")
    if limit is not None and limit <= 0:
        raise DataError(f"{where}: dataset.limit must be a positive number of rows or null (all rows), got {limit}.")
    if on_duplicate not in ON_DUPLICATE:
        raise DataError(f"{where}: dataset.on_duplicate must be one of {', '.join(ON_DUPLICATE)}, got {on_duplicate!r}.")
    if max_row_bytes <= 0:
        raise DataError(f"{where}: dataset.max_row_bytes must be positive, got {max_row_bytes}.")


def find_file(path: str | Path) -> Path | None:
    """The absolute path `path` names, None when nothing is there. Relative paths: from the working directory, else
    from the repo root (Hydra may change the cwd)."""
    p = Path(path).expanduser()
    if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists():
        p = REPO_ROOT / p
    return p.absolute() if p.exists() else None


def resolve_path(path: str | Path) -> Path:
    """`find_file`, or a DataError that says what to set."""
    p = find_file(path)
    if p is None:
        p = Path(path).expanduser().absolute()
        raise DataError(f"{p}: file not found. Set dataset.path to an existing .json/.jsonl(.gz) file "
                        "(relative paths are looked up in the working directory, then in the repository root).")
    if p.is_dir():
        raise DataError(f"{p}: is a directory; dataset.path must name one .json/.jsonl(.gz) file in it.")
    if not p.is_file():  # a FIFO would block the read forever; a socket or device is no pool either
        kind = "a FIFO (named pipe)" if p.is_fifo() else "not a regular file"
        raise DataError(f"{p}: is {kind}; dataset.path must name a regular .json/.jsonl(.gz) file.")
    try:
        with open(p, "rb"):
            pass
    except OSError as e:
        raise DataError(f"{p}: cannot be read ({e.strerror or e}); check its permissions, or copy it somewhere "
                        "readable and set dataset.path to the copy.") from None
    return p


def _check_size(n_bytes: int, max_row_bytes: int, loc: str) -> None:
    if n_bytes > max_row_bytes:
        raise DataError(f"{loc}: row is {n_bytes:,} bytes, more than dataset.max_row_bytes={max_row_bytes:,}. "
                        "Remove or shorten it, or raise dataset.max_row_bytes.")


def _read_rows(file: Path, max_row_bytes: int) -> list[tuple[Any, str]]:
    """(row, location) pairs of a JSON array or JSON Lines file, chosen by the first character."""
    text = read_pool_text(file)
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{file}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}. "
                            "Fix the file (a JSON array of row objects, or one JSON object per line).") from e
        rows = []
        for k, row in enumerate(data):
            loc = f"{file}, row {k} (0-based)"
            size = len(json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogatepass"))  # a lone surrogate:
            _check_size(size, max_row_bytes, loc)  # reported with its row later
            rows.append((row, loc))
        return rows
    rows = []
    # split("\n"), not splitlines(): U+2028 and friends may legally sit unescaped inside JSON strings.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        loc = f"{file}, row {len(rows)} (0-based), line {lineno}"
        _check_size(len(line.encode("utf-8")), max_row_bytes, loc)
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            hint = (" The file looks like one pretty-printed JSON object; use a JSON array of rows or JSON Lines."
                    if lineno == 1 and line.strip() == "{" else "")
            raise DataError(f"{loc}: invalid JSON at column {e.colno}: {e.msg}.{hint}") from e
        rows.append((row, loc))
    return rows


def _detect_format(row: Any, loc: str) -> str:
    if isinstance(row, dict):
        if "conversations" in row or "messages" in row:
            return "sharegpt"
        if "instruction" in row and "output" in row:
            return "alpaca" if "input" in row else "evol_instruct"
    keys = sorted(row) if isinstance(row, dict) else type(row).__name__
    raise DataError(f"{loc}: cannot detect the format from this first row ({keys}); expected keys "
                    "instruction/output[/input] (Alpaca, Evol-Instruct) or conversations (ShareGPT). "
                    f"Fix the file or set dataset.format to one of {', '.join(FORMATS[1:])}.")


def _string(row: dict, key: str, loc: str) -> str:
    value = row[key]
    if not isinstance(value, str):
        raise DataError(f"{loc}: '{key}' must be a string, got {type(value).__name__}.")
    return value


def _parse_alpaca(row: dict, loc: str, fmt: str) -> tuple[str, str, str, tuple | None]:
    missing = [k for k in ("instruction", "output") if k not in row]
    if missing:
        raise DataError(f"{loc}: missing {', '.join(repr(k) for k in missing)} for format {fmt!r} "
                        f"(row keys: {sorted(row)}). Fix the row, or check dataset.format (auto detects it).")
    # A null input (e.g. pandas NaN exported as null) means "no input"; every other type is an error.
    input = "" if row.get("input") is None else _string(row, "input", loc)
    return _string(row, "instruction", loc), input, _string(row, "output", loc), None


def _parse_sharegpt(row: dict, loc: str, unwrap: bool) -> tuple[str, str, str, tuple | None]:
    turns = row.get("conversations", row.get("messages"))
    if turns is None:
        raise DataError(f"{loc}: missing 'conversations' for format 'sharegpt' (row keys: {sorted(row)}). "
                        "Fix the row, or check dataset.format (auto detects it).")
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{loc}: 'conversations' must be a non-empty list of turns.")
    conv: list[tuple[str, str]] = []
    for t, turn in enumerate(turns):
        speaker = turn.get("from", turn.get("role")) if isinstance(turn, dict) else None
        text = turn.get("value", turn.get("content")) if isinstance(turn, dict) else None
        if not isinstance(speaker, str) or not isinstance(text, str):
            raise DataError(f"{loc}: conversation turn {t} (0-based) must be an object with string "
                            "'from' and 'value' (or 'role' and 'content').")
        role = _ROLES.get(speaker.lower())
        if role is None:
            raise DataError(f"{loc}: conversation turn {t} (0-based) has unknown speaker {speaker!r}; "
                            f"accepted: {', '.join(sorted(_ROLES))}.")
        if role != "system":
            conv.append((role, text))
    roles = [r for r, _ in conv]
    if "human" not in roles:
        raise DataError(f"{loc}: conversation has no human/user turn.")
    h = roles.index("human")
    if "gpt" not in roles[h:]:
        raise DataError(f"{loc}: conversation has no gpt/assistant turn after its first human turn; "
                        "add the response or remove the row.")
    g = roles.index("gpt", h)
    split = unwrap_alpaca_one_line(conv[h][1]) if unwrap else None
    instruction, input = split or (conv[h][1], "")
    return instruction, input, conv[g][1], (tuple(conv) if len(conv) > 2 else None)


def _to_records(rows: list[tuple[Any, str]], format: str, *, source: str, where: str, limit: int | None,
                seed: int, on_duplicate: str, unwrap: bool) -> list[Record]:
    if not rows:
        raise DataError(f"{where}: no rows; expected a JSON array or JSON Lines of instruction rows.")
    fmt = _detect_format(rows[0][0], rows[0][1]) if format == "auto" else format
    records: list[Record] = []
    first_row_of: dict[str, int] = {}
    for index, (row, loc) in enumerate(tqdm(rows, desc=f"load {source}", unit="row", leave=False,
                                            disable=len(rows) < 10_000)):
        if not isinstance(row, dict):
            raise DataError(f"{loc}: expected a JSON object, got {type(row).__name__}.")
        if fmt == "sharegpt":
            instruction, input, output, conv = _parse_sharegpt(row, loc, unwrap)
        else:
            instruction, input, output, conv = _parse_alpaca(row, loc, fmt)
        check_unicode(loc, instruction=instruction, input=input, output=output,
                       **{f"conversation turn {t}": text for t, (_, text) in enumerate(conv or ())})
        if not instruction.strip():
            raise DataError(f"{loc}: instruction is empty or whitespace-only; fix or remove the row.")
        if not output.strip():
            raise DataError(f"{loc}: output is empty or whitespace-only; fix or remove the row.")
        rid = record_id(instruction, input, output)
        if rid in first_row_of:
            if on_duplicate == "error":
                raise DataError(f"{where}: rows {first_row_of[rid]} and {index} (0-based) are identical "
                                f"(same instruction, input and output, id {rid}). Remove one, or set "
                                "dataset.on_duplicate=drop to keep the first.")
            continue
        first_row_of[rid] = index
        records.append(Record(id=rid, index=index, instruction=instruction, input=input, output=output,
                              source=source, conversations=conv))
    if len(records) < len(rows):
        log.warning("%s: dropped %d duplicate rows (dataset.on_duplicate=drop)", where, len(rows) - len(records))
    return _subset(records, limit, seed)


def _subset(records: list[Record], limit: int | None, seed: int) -> list[Record]:
    """`limit` rows chosen by a seeded shuffle, returned in file order.

    Taking a prefix of one permutation makes subsets nested: limit=100 is inside limit=200 (same seed).
    """
    if limit is None or limit >= len(records):
        return records
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    return [records[i] for i in sorted(order[:limit])]
