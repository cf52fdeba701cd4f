"""Rebuild data/ (sample pool, test sets, MT-Bench copies) from the OpenCS reference files.

    python scripts/build_sample_data.py [--reference /work/shared/data/reference] [--out data]

Deterministic: the same reference files give byte-identical outputs (seeded shuffle, gzip mtime=0).
Prints the row counts and the sha256 lines that data/README.md lists.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tacos.data.formats import unwrap_alpaca_one_line  # noqa: E402
from tacos.paths import BUNDLED_DATA_DIR  # noqa: E402
from tacos.data.benchmark_sets import EXPECTED_SIZES  # noqa: E402
from tacos.records import TestQuestion, dumps, file_sha256, record_id, write_jsonl  # noqa: E402

# Unrefined sets whose human turn carries the one-line Alpaca wrapper (refined sets are GPT-4o rewrites).
WRAPPED_SOURCES = ("selected/filtered_alpaca_1k_opencs.json", "baselines/filtered_alpaca_1k_longest.json",
                   "baselines/filtered_alpaca_1k_score.json")
# No wrapper: the human turn is `instruction` or `instruction + "\n" + input`.
ABLATION_SOURCES = ("ablation/alpaca_1k_opencs_wo_contrastive_score.json",
                    "ablation/alpaca_1k_opencs_wo_open_tag_cluster.json")
TINY_ROWS = 40
MT_BENCH_FILES = {"llm_judge/mt_bench/question.jsonl": "question.jsonl",
                  "llm_judge/mt_bench/reference_answer/gpt-4.jsonl": "reference_answer/gpt-4.jsonl",
                  "llm_judge/judge_prompts_upstream_fastchat.jsonl": "judge_prompts.jsonl"}


def _pairs(path: Path) -> list[tuple[str, str | None]]:
    """(human text, gpt text or None) of the first exchange of each ShareGPT row."""
    out = []
    for row in json.loads(path.read_text(encoding="utf-8")):
        conv = row["conversations"]
        out.append((conv[0]["value"], conv[1]["value"] if len(conv) > 1 else None))
    return out


def _split_ablation(text: str, known: set[str]) -> tuple[str, str] | None:
    """Split `instruction[\\n input]` only when it is certain; None = skip the row.

    No newline: the whole text is the instruction. Otherwise the instruction must be one already seen in
    a wrapped set (exact, or the longest known instruction followed by "\\n").
    """
    if "\n" not in text or text in known:
        return text, ""
    heads = [k for k in known if text.startswith(k + "\n")]
    if not heads:
        return None
    head = max(heads, key=len)
    return head, text[len(head) + 1:]


def build_pool(reference: Path, seed: int) -> tuple[list[dict], dict[str, dict[str, int]]]:
    rows: dict[str, dict] = {}  # content id -> row, first occurrence wins
    stats: dict[str, dict[str, int]] = {}
    known: set[str] = set()

    def add(source: str, instruction: str, input: str, output: str) -> None:
        st = stats[source]
        if not instruction.strip() or not output.strip():
            st["skipped_empty"] += 1
            return
        rid = record_id(instruction, input, output)
        if rid in rows:
            st["duplicate"] += 1
            return
        rows[rid] = {"instruction": instruction, "input": input, "output": output}
        st["added"] += 1

    for source in WRAPPED_SOURCES:
        stats[source] = dict(rows=0, added=0, duplicate=0, skipped_empty=0, skipped_unwrappable=0)
        for human, gpt in _pairs(reference / source):
            stats[source]["rows"] += 1
            split = unwrap_alpaca_one_line(human)
            if split is None or gpt is None:
                stats[source]["skipped_unwrappable"] += 1
                continue
            known.add(split[0])
            add(source, split[0], split[1], gpt)
    for source in ABLATION_SOURCES:
        stats[source] = dict(rows=0, added=0, duplicate=0, skipped_empty=0, skipped_unsplittable=0, skipped_no_gpt=0)
        for human, gpt in _pairs(reference / source):
            stats[source]["rows"] += 1
            if gpt is None:
                stats[source]["skipped_no_gpt"] += 1
                continue
            split = _split_ablation(human, known)
            if split is None:
                stats[source]["skipped_unsplittable"] += 1
                continue
            add(source, split[0], split[1], gpt)
    pool = list(rows.values())  # insertion order = source order, then row order
    random.Random(seed).shuffle(pool)  # so any prefix mixes all sources
    return pool, stats


def write_pool(pool: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    body = "".join(dumps(r) + "\n" for r in pool).encode("utf-8")
    with open(out / "alpaca_sample.jsonl.gz", "wb") as f:
        # filename="" and mtime=0 keep the gzip header free of names and dates -> byte-identical rebuilds
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=0) as gz:
            gz.write(body)
    tiny = json.dumps(pool[:TINY_ROWS], ensure_ascii=False, indent=2) + "\n"
    (out / "alpaca_tiny.json").write_text(tiny, encoding="utf-8", newline="\n")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_test_sets(reference: Path, out: Path) -> dict[str, int]:
    src = reference / "test_sets"
    sets: dict[str, list[TestQuestion]] = {
        "koala": [TestQuestion(str(r["id"]), "koala", r["prompt"])
                  for r in _read_jsonl(src / "koala_test_set.jsonl")],
        "sinstruct": [TestQuestion(str(r["id"]), "sinstruct", r["instruction"], r["instances"][0]["input"],
                                   r["motivation_app"])
                      for r in _read_jsonl(src / "sinstruct_test_set.jsonl")],
        "wizardlm": [TestQuestion(str(r["idx"]), "wizardlm", r["Instruction"], category=r["Skill"])
                     for r in _read_jsonl(src / "wizardlm_test_set.jsonl")],
        "vicuna": [TestQuestion(str(r["question_id"]), "vicuna", r["text"], category=r["category"])
                   for r in _read_jsonl(src / "vicuna_test_set.jsonl")],
        # LIMA has no id: the 0-based row index is its id; `conversations` holds exactly one prompt.
        "lima": [TestQuestion(str(i), "lima", r["conversations"][0])
                 for i, r in enumerate(_read_jsonl(src / "lima_test.jsonl"))],
    }
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, questions in sets.items():
        if len(questions) != EXPECTED_SIZES[name] or len({q.question_id for q in questions}) != len(questions):
            raise SystemExit(f"{name}: {len(questions)} rows or duplicate ids; expected {EXPECTED_SIZES[name]} unique")
        counts[name] = write_jsonl(out / f"{name}.jsonl", questions)
    return counts


def copy_mt_bench(reference: Path, out: Path) -> None:
    for src, dst in MT_BENCH_FILES.items():
        (out / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(reference / src, out / dst)  # bytes unchanged (FastChat, Apache-2.0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, default=Path("/work/shared/data/reference"))
    ap.add_argument("--out", type=Path, default=BUNDLED_DATA_DIR)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    pool, stats = build_pool(args.reference, args.seed)
    write_pool(pool, args.out / "sample")
    test_counts = build_test_sets(args.reference, args.out / "test_sets")
    copy_mt_bench(args.reference, args.out / "mt_bench")

    for source, st in stats.items():
        print(f"{source}: " + ", ".join(f"{k} {v}" for k, v in st.items()))
    print(f"sample pool: {len(pool)} rows, {sum(bool(r['input']) for r in pool)} with input")
    print("test sets: " + ", ".join(f"{k} {v}" for k, v in test_counts.items()))
    for path in sorted(p for p in args.out.rglob("*") if p.is_file() and p.suffix != ".md"):
        print(f"{file_sha256(path)}  {path.relative_to(args.out).as_posix()}")


if __name__ == "__main__":
    main()
