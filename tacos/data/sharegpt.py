"""The training-set file format: ShareGPT/FastChat JSON (+ Alpaca JSON) with a LLaMA-Factory dataset_info.json, and
ExportSpec, the `export` section of conf/config.yaml (how stages export and refine write it)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tacos.config import check_bool, check_choice
from tacos.data.formats import PROMPT_WRAPPERS, human_turn
from tacos.records import file_sha256


@dataclass
class ExportSpec:
    """The `export` section: the dataset's name, the human-turn wrapper, whether an Alpaca JSON copy is written."""

    name: str = "tacos_subset"  # files and the dataset_info entry are named after it (unsafe characters become _)
    prompt_wrapper: str = "alpaca_one_line"
    write_alpaca_json: bool = True

    def __post_init__(self) -> None:
        self.name = str(self.name)  # a name of digits arrives from the command line as a number

    def validate(self) -> None:
        if not self.name.strip():
            raise ValueError(f"export.name must not be empty, got {self.name!r}")
        check_choice("export.prompt_wrapper", self.prompt_wrapper, PROMPT_WRAPPERS)
        check_bool("export.write_alpaca_json", self.write_alpaca_json)

    def write(self, folder: Path, rows: list[dict], name_suffix: str = "") -> dict:
        """Write the rows as dataset `<name><name_suffix>` into folder (see write_export)."""
        return write_export(folder, f"{self.name}{name_suffix}", rows, self.prompt_wrapper, self.write_alpaca_json)


def dataset_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "tacos_subset"


def to_sharegpt(rows: list[dict], wrapper: str) -> list[dict]:
    """Selected rows ({instruction, input, output, conversations?, selection: {score}}) as ShareGPT conversations."""
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
    """Write <name>.json (+ <name>_alpaca.json) and dataset_info.json into folder; return name, file and hash."""
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
