"""Memory between stages: the models a stage loaded are dropped when it ends, and freed heap goes back to the OS.

Models are cached in module-level dicts so that every judge of a stage shares one copy (the scoring LM, the sentence
encoder); without a release they would stay resident through every later stage, and glibc keeps freed blocks in the
heap unless asked to return them (malloc_trim).
"""
from __future__ import annotations

import ctypes
import gc
import sys


def trim() -> None:
    """Return the heap's free pages to the OS (glibc only; a no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def release_encoders() -> None:
    """Drop the loaded sentence encoders (MiniLM: ~0.1 GB; reloaded in about a second when asked for again)."""
    clustering = sys.modules.get("tacos.method.clustering")
    if clustering is not None:
        clustering._load_model.cache_clear()
    gc.collect()
    trim()


def release_models() -> None:
    """Drop the loaded scoring models and sentence encoders (only modules already imported are touched: this never
    imports torch), then collect and trim."""
    lm = sys.modules.get("tacos.llm.likelihoods.transformers_lm")
    if lm is not None:
        lm.release_loaded()
    release_encoders()
