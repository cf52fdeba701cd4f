"""Helpers of the tests/test_faults_*.py files: small pools, manifests, cache rows, the run.py overrides."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tacos.data.loaders import load_records, sample_pool_path
from tacos.llm.calling.cache import CACHE_FILENAME


def sample_rows(n: int) -> list[dict]:
    """The first n rows of the bundled sample pool as Alpaca dicts."""
    return [{"instruction": r.instruction, "input": r.input, "output": r.output}
            for r in load_records(sample_pool_path())[:n]]


def write_pool(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def manifests(run_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("*/manifest.json")}


def cache_rows(cache_dir: Path) -> list[dict]:
    """Every row of the call cache (read-only; safe while another process writes it)."""
    path = cache_dir / CACHE_FILENAME
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM calls")]
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):  # the writer has created the file but not the table yet
            return []
        raise
    finally:
        conn.close()
    for r in rows:
        r["request"] = json.loads(r["request"])
    return rows


def llm_overrides(base_url: str, tmp_path: Path, pool: Path | None = None) -> list[str]:
    """run.py overrides: the stub as the LLM, outputs under tmp_path, no W&B, fast retries, one call at a time."""
    out = ["llm=openai_compatible", f"llm.base_url={base_url}", "llm.model=stub-judge",
           f"paths.output_dir={tmp_path / 'outputs'}", "logger=none", "client.backoff_base=0.01",
           "client.max_concurrency=1", "scorer/judge=llm_text"]
    if pool is not None:
        out += ["dataset=jsonl", f"dataset.path={pool}"]
    return out


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]
