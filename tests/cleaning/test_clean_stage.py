"""The clean stage in a run (no LLM): defective rows leave the pool before anything reads it, each listed with its
reasons, counts per check in the manifest; clean=none keeps every row; a stage list without clean says what to add."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli

from test_checks import DEFECTS, GOOD


def _pool(tmp_path: Path) -> Path:
    rows = [{"instruction": i, "input": x, "output": o} for _, i, x, o in DEFECTS[:4] + DEFECTS[5:7] + GOOD[:8]]
    # (the whitespace-only output of DEFECTS[4] is refused by the loader already)
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _args(tmp_path: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["dataset=jsonl", f"dataset.path={_pool(tmp_path)}", "selection=random", "selection.budget=20",
            f"paths.output_dir={tmp_path / 'out'}", "logger=none", f"hydra.run.dir={run_dir}", *extra]


def test_clean_stage_removes_defects_before_selection_and_lists_them(tmp_path):
    run_dir = tmp_path / "run"
    out = run_cli(_args(tmp_path, run_dir, "stages=[data,clean,select,export]"))
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads((run_dir / "clean" / "manifest.json").read_text())
    assert m["counts"]["records"] == 14 and m["counts"]["removed"] == 6 and m["counts"]["kept"] == 8
    assert m["counts"]["by_check"] == {"placeholder_output": 5, "unseen_material": 1, "merged_tasks": 0,
                                       "action_claim": 0, "cut_short": 0, "wrong_arithmetic": 0}
    assert m["config_hash"] and "data" in m["inputs"] and m["seconds"] < 5
    removed = [json.loads(line) for line in (run_dir / "clean" / "removed.jsonl").read_text().splitlines()]
    assert [r["index"] for r in removed] == list(range(6)) and all(r["checks"] for r in removed)
    assert "never saw" in removed[5]["checks"]["unseen_material"]
    selected = [json.loads(line) for line in (run_dir / "select" / "selected.jsonl").read_text().splitlines()]
    assert len(selected) == 8 and {r["index"] for r in selected} == set(range(6, 14))
    sel = json.loads((run_dir / "select" / "manifest.json").read_text())
    assert sel["inputs"] == {"clean": m["output_hash"]}

    # clean=none: the stage keeps every row (and so every later stage's input changes).
    off = tmp_path / "off"
    out = run_cli(_args(tmp_path, off, "stages=[data,clean,select]", "clean=none"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((off / "clean" / "manifest.json").read_text())["counts"]["removed"] == 0
    assert json.loads((off / "select" / "manifest.json").read_text())["counts"]["selected"] == 14


def test_a_stage_list_without_clean_names_it(tmp_path):
    out = run_cli(_args(tmp_path, tmp_path / "r", "stages=[data,select]"))
    assert out.returncode != 0 and "clean" in out.stderr + out.stdout
