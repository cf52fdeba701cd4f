"""Stage `refine` (optional): LLM rewrite of each selected response (and optionally instruction), originals kept.

Writes the refined subset in the export formats plus a diff report (length change, invalid rate). A rewrite that
cannot be parsed keeps the original text and is counted — never silently empty.
"""
from __future__ import annotations

import json

from tacos.config import to_container
from tacos.records import iter_jsonl, write_jsonl
from tacos.stages.common import check_errors, fill, prompts_hash, read_prompt

COMPONENTS = ()
SHAREABLE = True  # output depends only on config + inputs: computed once across runs (tacos.store)
SYSTEM, RESPONSE, INSTRUCTION = "refine_system.txt", "refine_response.txt", "refine_instruction.txt"


def requires(cfg) -> list[str]:
    return ["select"]


def uses_llm(cfg) -> bool:
    return True


def config_slice(cfg) -> dict:
    return {"refine": to_container(cfg.refine), "export": to_container(cfg.export),
            "prompt_hash": prompts_hash(SYSTEM, RESPONSE, INSTRUCTION)}


def _requests(rows: list[dict], prompt: str, rcfg):
    from tacos.llm.client import LLMRequest

    field = "better_response" if prompt == RESPONSE else "better_instruction"
    schema = {"type": "object", "properties": {field: {"type": "string"}}, "required": [field]}
    system, phash = read_prompt(SYSTEM).strip(), prompts_hash(SYSTEM, prompt)
    return [LLMRequest(messages=(("system", system),
                                 ("user", fill(read_prompt(prompt), instruction=r["instruction"], response=r["output"]))),
                       prompt_hash=phash, temperature=float(rcfg.temperature), top_p=float(rcfg.top_p),
                       max_tokens=int(rcfg.max_tokens), schema=schema, label=r["id"]) for r in rows]


def _parser(field: str):
    def parse(raw: str) -> str:
        from tacos.llm.parsing import ParseError, extract_json

        data = extract_json(raw)
        text = data.get(field) if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ParseError(f"no non-empty {field!r} in the answer")
        return text.strip()
    return parse


def run(ctx) -> dict:
    from tacos.stages.export import write_export

    rcfg = ctx.cfg.refine
    rows = list(iter_jsonl(ctx.input_dir("select") / "selected.jsonl"))
    originals = [dict(r) for r in rows]
    res_resp = ctx.llm.run(_requests(rows, RESPONSE, rcfg), _parser("better_response"), desc="refine (response)")
    n_err = check_errors(ctx, res_resp, "refine")
    invalid_resp = 0
    for r, res in zip(rows, res_resp):
        if res.status == "ok":
            r["output"] = res.parsed
        else:
            invalid_resp += 1
    invalid_instr = 0
    if rcfg.rewrite_instruction:
        res_instr = ctx.llm.run(_requests(rows, INSTRUCTION, rcfg), _parser("better_instruction"),
                                desc="refine (instruction)")
        n_err += check_errors(ctx, res_instr, "refine")
        for r, res in zip(rows, res_instr):
            if res.status == "ok":
                r["instruction"] = res.parsed
            else:
                invalid_instr += 1
    diff = [{"id": o["id"], "output_chars_before": len(o["output"]), "output_chars_after": len(r["output"]),
             "instruction_changed": o["instruction"] != r["instruction"], "output_changed": o["output"] != r["output"],
             "original_instruction": o["instruction"], "original_output": o["output"]}
            for o, r in zip(originals, rows)]
    write_jsonl(ctx.out_dir / "refined.jsonl", rows)
    write_jsonl(ctx.out_dir / "diff.jsonl", diff)
    info = write_export(ctx.out_dir, f"{ctx.cfg.export.name}_refined", rows, str(ctx.cfg.export.prompt_wrapper),
                        bool(ctx.cfg.export.write_alpaca_json))
    before = sum(d["output_chars_before"] for d in diff) / max(1, len(diff))
    after = sum(d["output_chars_after"] for d in diff) / max(1, len(diff))
    report = {"mean_output_chars_before": round(before, 1), "mean_output_chars_after": round(after, 1),
              "invalid_rate_response": round(invalid_resp / max(1, len(rows)), 4),
              "invalid_rate_instruction": round(invalid_instr / max(1, len(rows)), 4) if rcfg.rewrite_instruction else None}
    (ctx.out_dir / "diff_report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return {"counts": {"rows": len(rows), "responses_rewritten": len(rows) - invalid_resp,
                       "invalid_responses": invalid_resp, "invalid_instructions": invalid_instr, "errors": n_err},
            "stats": {**info, **report}}
