"""Stage `refine` (optional): LLM rewrite of each selected response (and optionally instruction), originals kept.

The refiner (`refine:`, tacos.refiners.LLMRefiner) builds the requests and parses the rewrites; this stage feeds it
the selected rows and writes the refined subset in the export formats (`export:` settings, name suffix `_refined`)
plus a diff report (length change, invalid rate). A rewrite that cannot be parsed keeps the original text and is
counted — never silently empty.
"""
from __future__ import annotations

import json

from tacos.config import to_container
from tacos.records import iter_jsonl, write_jsonl
from tacos.refiners import INSTRUCTION, RESPONSE
from tacos.stage import StageBase, StageResult, component


class RefineStage(StageBase):
    name, shareable, components = "refine", True, ("refine", "export")

    def requires(self, cfg) -> list[str]:
        return ["select"]

    def uses_llm(self, cfg) -> bool:
        return True

    def config_slice(self, cfg) -> dict:
        return {"refine": to_container(cfg.refine), "export": to_container(cfg.export),
                **component(cfg, "refine").identity(), "seed": int(cfg.seed)}

    def run(self, ctx) -> StageResult:
        refiner = ctx.component("refine")
        rows = list(iter_jsonl(ctx.input_dir("select") / "selected.jsonl"))
        originals = [dict(r) for r in rows]
        invalid = refiner.refine(rows, ctx.llm, ctx.seed)
        invalid_resp, invalid_instr = invalid[RESPONSE.row_key], invalid.get(INSTRUCTION.row_key, 0)
        diff = [{"id": o["id"], "output_chars_before": len(o["output"]), "output_chars_after": len(r["output"]),
                 "instruction_changed": o["instruction"] != r["instruction"],
                 "output_changed": o["output"] != r["output"],
                 "original_instruction": o["instruction"], "original_output": o["output"]}
                for o, r in zip(originals, rows)]
        write_jsonl(ctx.out_dir / "refined.jsonl", rows)
        write_jsonl(ctx.out_dir / "diff.jsonl", diff)
        info = ctx.component("export").write(ctx.out_dir, rows, name_suffix="_refined")
        before = sum(d["output_chars_before"] for d in diff) / max(1, len(diff))
        after = sum(d["output_chars_after"] for d in diff) / max(1, len(diff))
        report = {"mean_output_chars_before": round(before, 1), "mean_output_chars_after": round(after, 1),
                  "invalid_rate_response": round(invalid_resp / max(1, len(rows)), 4),
                  "invalid_rate_instruction": round(invalid_instr / max(1, len(rows)), 4)
                  if refiner.rewrite_instruction else None}
        (ctx.out_dir / "diff_report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        return StageResult(counts={"rows": len(rows), "responses_rewritten": len(rows) - invalid_resp,
                                   "invalid_responses": invalid_resp, "invalid_instructions": invalid_instr,
                                   "errors": 0}, stats={**info, **report})

    def plan(self, ctx) -> dict:
        rows = list(iter_jsonl(ctx.run_dir / "select" / "selected.jsonl")) \
            if (ctx.run_dir / "select" / "manifest.json").is_file() else []
        return {**ctx.llm.forecast(ctx.component("refine").forecast_requests(rows, ctx.seed)), "exact": bool(rows)}


STAGE = RefineStage()
