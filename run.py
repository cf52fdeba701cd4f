#!/usr/bin/env python
"""TACOS — the one entry point (installed, the same command is `tacos run`).

    python run.py                                   # embedded default: bundled sample pool, local LLM
    python run.py dataset=jsonl dataset.path=F      # your pool
    python run.py stages=[data,clean,tag,normalize] # a subset of stages
    python run.py -m scorer=contrastive,single clustering=kmeans,none   # the ablation grid
    python run.py dry_run=true                      # forecast LLM calls / tokens / cost, call nothing
    python run.py --help                            # the common commands and the config groups

The Hydra application is tacos/app.py (it composes the config, runs the stages, owns the W&B run).
"""
from tacos.app import main

if __name__ == "__main__":
    main()
