"""Stage `export`: the selected subset as ShareGPT/FastChat JSON (+ Alpaca JSON) with a LLaMA-Factory
dataset_info.json entry; the subset's content hash; contamination and reference-overlap reports."""
from __future__ import annotations

import json
import re
from pathlib import Path

from tacos.config import to_container
from tacos.records import file_sha256, iter_jsonl

COMPONENTS = ()
SHAREABLE = True  # output depends only on config + inputs: computed once across runs (tacos.store)
_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
             "request. ### Instruction: ")
_WITH_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further context. "
               "Write a response that appropriately completes the request. ### Instruction: ")


def alpaca_one_line(instruction: str, input: str) -> str:
    """The one-line Alpaca wrapper of the released TACOS sets (method_spec §9)."""
    return f"{_WITH_INPUT}{instruction} ### Input: {input}" if input else f"{_NO_INPUT}{instruction}"


def human_turn(instruction: str, input: str, wrapper: str) -> str:
    if wrapper == "alpaca_one_line":
        return alpaca_one_line(instruction, input)
    if wrapper == "none":
        return f"{instruction}\n{input}" if input else instruction
    raise ValueError(f"export.prompt_wrapper must be alpaca_one_line or none, not {wrapper!r}")


def dataset_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "tacos_subset"


def requires(cfg) -> list[str]:
    return ["select"]


def uses_llm(cfg) -> bool:
    return False


def config_slice(cfg) -> dict:
    return {"export": to_container(cfg.export), "report": to_container(cfg.report)}


def to_sharegpt(rows: list[dict], wrapper: str) -> list[dict]:
    out = []
    for r in rows:
        conv = [{"from": "human", "value": human_turn(r["instruction"], r["input"], wrapper)},
                {"from": "gpt", "value": r["output"]}]
        if r.get("conversations"):  # multi-turn source: keep the later exchanges as they were
            for role, text in r["conversations"][2:]:
                conv.append({"from": "human" if role in ("human", "user") else "gpt", "value": text})
        score = r["selection"].get("score")
        out.append({"id": r["id"], "conversations": conv, "score": "" if score is None else score})
    return out


def write_export(folder: Path, name: str, rows: list[dict], wrapper: str, alpaca_json: bool) -> dict:
    """Write <name>.json (+ <name>_alpaca.json) and dataset_info.json into folder; return hashes."""
    name = dataset_name(name)
    data_file = folder / f"{name}.json"
    data_file.write_text(json.dumps(to_sharegpt(rows, wrapper), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    info = {name: {"file_name": data_file.name, "formatting": "sharegpt", "columns": {"messages": "conversations"},
                   "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}}}
    if alpaca_json:
        alp = [{"instruction": r["instruction"], "input": r["input"], "output": r["output"]} for r in rows]
        (folder / f"{name}_alpaca.json").write_text(json.dumps(alp, ensure_ascii=False, indent=1) + "\n",
                                                     encoding="utf-8")
        info[f"{name}_alpaca"] = {"file_name": f"{name}_alpaca.json",
                                  "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return {"dataset_name": name, "file": data_file.name, "subset_sha256": file_sha256(data_file)}


def run(ctx) -> dict:
    rows = list(iter_jsonl(ctx.input_dir("select") / "selected.jsonl"))
    ecfg = ctx.cfg.export
    info = write_export(ctx.out_dir, str(ecfg.name), rows, str(ecfg.prompt_wrapper), bool(ecfg.write_alpaca_json))
    reports = _reports(ctx, rows)
    return {"counts": {"exported": len(rows)}, "stats": {**info, **reports}}


def _reports(ctx, rows: list[dict]) -> dict:
    """n-gram contamination against the 5 test sets; overlap with the released TACOS subsets (by content id)."""
    from tacos.data.test_sets import TEST_SETS, load_test_set
    from tacos.method.contamination import contamination_report

    rcfg = ctx.cfg.report
    train = {r["id"]: f"{r['instruction']}\n{r['input']}".strip() for r in rows}
    tests = {name: {q.question_id: f"{q.instruction}\n{q.input}".strip() for q in load_test_set(name)}
             for name in TEST_SETS}
    rep = contamination_report(train, tests, n=int(rcfg.contamination_ngram), threshold=float(rcfg.contamination_threshold))
    (ctx.out_dir / "contamination.json").write_text(json.dumps(rep, indent=1, default=str) + "\n", encoding="utf-8")
    ctx.add_table("contamination", ["test_set", "questions", "flagged"],
                  [[k, v["n_questions"], v["n_flagged"]] for k, v in rep["per_test_set"].items()])
    out = {"contaminated_rows": rep["n_train_flagged"]}
    ids = {r["id"] for r in rows}
    ref_dir = Path(ctx.cfg.paths.data_dir) / "reference_sets"
    overlap = {}
    for f in sorted(ref_dir.glob("*.ids")):
        ref = {line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()}
        overlap[f.stem] = {"shared": len(ids & ref), "fraction_of_selected": round(len(ids & ref) / max(1, len(ids)), 4)}
    if overlap:
        (ctx.out_dir / "reference_overlap.json").write_text(json.dumps(overlap, indent=1) + "\n", encoding="utf-8")
        out["overlap_with_released"] = overlap
    return out
