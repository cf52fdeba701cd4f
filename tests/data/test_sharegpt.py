"""The export format (tacos/data/sharegpt.py) and ExportSpec, the `export` section that writes it."""
from __future__ import annotations

import json

import pytest

from tacos.data.formats import wrap_alpaca_one_line
from tacos.data.sharegpt import ExportSpec

ROWS = [{"id": "a", "instruction": "Add 2 and 3.", "input": "", "output": "5", "selection": {"score": 4.5}},
        {"id": "b", "instruction": "Translate.", "input": "Hallo", "output": "Hello", "selection": {"score": None}}]


def test_export_spec_writes_sharegpt_alpaca_and_dataset_info(tmp_path):
    spec = ExportSpec(name="sample/tacos run", prompt_wrapper="alpaca_one_line", write_alpaca_json=True)
    spec.validate()
    info = spec.write(tmp_path, ROWS, name_suffix="_refined")
    assert info["dataset_name"] == "sample_tacos_run_refined" and info["file"] == "sample_tacos_run_refined.json"
    data = json.loads((tmp_path / info["file"]).read_text())
    assert data[1]["conversations"][0]["value"] == wrap_alpaca_one_line("Translate.", "Hallo")
    assert [d["score"] for d in data] == [4.5, ""]
    entries = json.loads((tmp_path / "dataset_info.json").read_text())
    assert set(entries) == {"sample_tacos_run_refined", "sample_tacos_run_refined_alpaca"}
    plain = ExportSpec(name=2024, prompt_wrapper="none", write_alpaca_json=False)  # digits arrive as a number
    (tmp_path / "p").mkdir()
    info = plain.write(tmp_path / "p", ROWS)
    assert info["dataset_name"] == "2024" and not (tmp_path / "p" / "2024_alpaca.json").exists()
    assert json.loads((tmp_path / "p" / "2024.json").read_text())[1]["conversations"][0]["value"] == "Translate.\nHallo"


@pytest.mark.parametrize("kwargs,key", [({"prompt_wrapper": "chatml"}, "export.prompt_wrapper"),
                                        ({"write_alpaca_json": "no"}, "export.write_alpaca_json"),
                                        ({"name": " "}, "export.name")])
def test_export_spec_clear_errors(kwargs, key):
    with pytest.raises(ValueError, match=rf"^{key} must"):
        ExportSpec(**kwargs).validate()
