"""Stage `refine` (optional): LLM rewrite of each selected response (and optionally instruction), originals kept.

Writes the refined subset in the export formats plus a diff report (length change, invalid rate). A rewrite that
cannot be parsed keeps the original text and is counted — never silently empty.
"""
from __future__ import annotations

import json

from tacos.config import to_container
from tacos.data.sharegpt import write_export
from tacos.llm.parsing import ParseError, extract_json
from tacos.llm.types import LLMRequest
from tacos.prompts import prompts_hash, read_prompt, render
from tacos.records import iter_jsonl, write_jsonl
from tacos.stage import StageBase, StageResult

SYSTEM, RESPONSE, INSTRUCTION = "refine_system.txt", "refine_response.txt", "refine_instruction.txt"
FIELDS = {RESPONSE: ("better_response", "output"), INSTRUCTION: ("better_instruction", "instruction")}


def _requests(rows: list[dict], prompt: str, rcfg, seed: int) -> list[LLMRequest]:
    field = FIELDS[prompt][0]
    schema = {"type": "object", "properties": {field: {"type": "string"}}, "required": [field]}
    system, phash = read_prompt(SYSTEM).strip(), prompts_hash(SYSTEM, prompt)
    return [LLMRequest(messages=(("system", system),
                                 ("user", render(read_prompt(prompt), instruction=r["instruction"], response=r["output"]))),
                       prompt_hash=phash, temperature=float(rcfg.temperature), top_p=float(rcfg.top_p),
                       max_tokens=int(rcfg.max_tokens), schema=schema, seed=seed, label=r["id"]) for r in rows]


def _parser(field: str):
    def parse(raw: str) -> str:
        data = extract_json(raw)
        text = data.get(field) if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ParseError(f"no non-empty {field!r} in the answer")
        return text.strip()
    return parse


class RefineStage(StageBase):
    name, shareable = "refine", True

    def requires(self, cfg) -> list[str]:
        return ["select"]

    def uses_llm(self, cfg) -> bool:
        return True

    def config_slice(self, cfg) -> dict:
        return {"refine": to_container(cfg.refine), "export": to_container(cfg.export),
                "prompt_hash": prompts_hash(SYSTEM, RESPONSE, INSTRUCTION), "seed": int(cfg.seed)}

    def _rewrite(self, ctx, rows: list[dict], prompt: str) -> int:
        """Rewrite one field of every row in place; returns how many rewrites were invalid (original kept)."""
        field, key = FIELDS[prompt]
        results = ctx.llm.run(_requests(rows, prompt, ctx.cfg.refine, ctx.seed), _parser(field),
                              desc=f"refine ({key})")
        for r, res in zip(rows, results):
            if res.status == "ok":
                r[key] = res.parsed
        return sum(res.status != "ok" for res in results)

    def run(self, ctx) -> StageResult:
        rcfg = ctx.cfg.refine
        rows = list(iter_jsonl(ctx.input_dir("select") / "selected.jsonl"))
        originals = [dict(r) for r in rows]
        invalid_resp = self._rewrite(ctx, rows, RESPONSE)
        invalid_instr = self._rewrite(ctx, rows, INSTRUCTION) if rcfg.rewrite_instruction else 0
        diff = [{"id": o["id"], "output_chars_before": len(o["output"]), "output_chars_after": len(r["output"]),
                 "instruction_changed": o["instruction"] != r["instruction"],
                 "output_changed": o["output"] != r["output"],
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
                  "invalid_rate_instruction": round(invalid_instr / max(1, len(rows)), 4)
                  if rcfg.rewrite_instruction else None}
        (ctx.out_dir / "diff_report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        return StageResult(counts={"rows": len(rows), "responses_rewritten": len(rows) - invalid_resp,
                                   "invalid_responses": invalid_resp, "invalid_instructions": invalid_instr,
                                   "errors": 0}, stats={**info, **report})

    def plan(self, ctx) -> dict:
        rows = list(iter_jsonl(ctx.run_dir / "select" / "selected.jsonl")) \
            if (ctx.run_dir / "select" / "manifest.json").is_file() else []
        requests = _requests(rows, RESPONSE, ctx.cfg.refine, ctx.seed)
        if ctx.cfg.refine.rewrite_instruction:
            requests += _requests(rows, INSTRUCTION, ctx.cfg.refine, ctx.seed)
        return {**ctx.llm.forecast(requests), "exact": bool(rows)}


STAGE = RefineStage()
