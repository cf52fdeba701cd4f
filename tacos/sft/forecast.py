"""The dry run's training forecast: GPU hours = 6 x params x tokens x epochs / (peak FLOP/s x utilisation).

Always an estimate (a FLOP count times an assumed utilisation); the tokens are counted (~4 characters each) when the
subset exists, else the caller estimates them from the number of rows.
"""
from __future__ import annotations

import json
from pathlib import Path

from tacos.sft.preflight import load_rows, resolve_dataset

CHARS_PER_TOKEN = 4


def subset_tokens(source: Path, dataset_name: str | None) -> int | None:
    """Tokens of the training subset at `source` (an export folder with its manifest, or a JSON file); None when it
    does not exist yet."""
    if not (source.is_file() or (source / "manifest.json").is_file()):
        return None
    data = resolve_dataset(source, dataset_name)
    chars = sum(len(json.dumps(row, ensure_ascii=False)) for row in load_rows(data.file))
    return chars // CHARS_PER_TOKEN


def gpu_hours(spec, tcfg, tokens: int) -> float:
    """GPU hours to train `spec` (ModelSpec) on `tokens` tokens, at tcfg's (TrainConfig) peak FLOP/s and utilisation."""
    flops = 6.0 * float(spec.params_b or 0.0) * 1e9 * tokens * float(spec.num_train_epochs)
    return flops / (float(tcfg.gpu_peak_tflops) * 1e12 * float(tcfg.gpu_utilization)) / 3600.0
