"""Stage `export`: the selected subset as ShareGPT/FastChat JSON (+ Alpaca JSON) with a LLaMA-Factory
dataset_info.json entry; the subset's content hash; an n-gram contamination report against the test sets.
The settings are `export:` (tacos.data.sharegpt.ExportSpec) and `report:`
(tacos.method.contamination.ContaminationCheck), both validated before any stage runs."""
from __future__ import annotations

import json
from pathlib import Path

from tacos.config import to_container
from tacos.records import iter_jsonl
from tacos.data.benchmark_sets import TEST_SETS, test_set_file
from tacos.stage import StageBase, StageResult, component, files_read


class ExportStage(StageBase):
    name, shareable, components = "export", True, ("export", "report")

    def requires(self, cfg) -> list[str]:
        return ["select"]

    def config_slice(self, cfg) -> dict:
        # The contamination report reads the test sets: an edited one makes the report stale.
        data_dir = component(cfg, "paths").data_dir
        return {"export": to_container(cfg.export), "report": to_container(cfg.report),
                "test_set_files": files_read({name: test_set_file(name, data_dir) for name in TEST_SETS})}

    def run(self, ctx) -> StageResult:
        rows = list(iter_jsonl(ctx.input_dir("select") / "selected.jsonl"))
        info = ctx.component("export").write(ctx.out_dir, rows)
        return StageResult(counts={"exported": len(rows)}, stats={**info, **_reports(ctx, rows)})


def _reports(ctx, rows: list[dict]) -> dict:
    """n-gram contamination against the 5 test sets."""
    from tacos.data.benchmark_sets import load_test_set

    data_dir = Path(ctx.paths.data_dir)
    train = {r["id"]: f"{r['instruction']}\n{r['input']}".strip() for r in rows}
    tests = {name: {q.question_id: f"{q.instruction}\n{q.input}".strip() for q in load_test_set(name, data_dir=data_dir)}
             for name in TEST_SETS}
    rep = ctx.component("report").run(train, tests)
    (ctx.out_dir / "contamination.json").write_text(json.dumps(rep, indent=1, default=str) + "\n", encoding="utf-8")
    ctx.add_table("contamination", ["test_set", "questions", "flagged"],
                  [[k, v["n_questions"], v["n_flagged"]] for k, v in rep["per_test_set"].items()])
    return {"contaminated_rows": rep["n_train_flagged"]}


STAGE = ExportStage()
