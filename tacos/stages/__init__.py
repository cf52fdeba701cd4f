"""The stages, in pipeline order. Each module defines one `StageBase` subclass and exports an instance as `STAGE`;
modules are imported on first use, so a run pays only for the stages it runs."""
from __future__ import annotations

import importlib

from tacos.stage import Stage, StageError

STAGE_ORDER = ("data", "clean", "tag", "normalize", "cluster", "score", "select", "export", "refine", "train", "infer",
               "judge", "report")


def get_stage(name: str) -> Stage:
    if name not in STAGE_ORDER:
        raise StageError(f"unknown stage {name!r}; stages are: {', '.join(STAGE_ORDER)}")
    return importlib.import_module(f"tacos.stages.{name}").STAGE
