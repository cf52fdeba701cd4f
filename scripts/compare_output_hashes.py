"""Same outputs before and after a refactoring? Run fixed configurations of a code tree (a checkout of any commit) on
the stub LLM (tests/stub_server.py) and write every stage's output_hash and the subset sha256 to a JSON file.

    git worktree add /tmp/before f99cd16
    .venv/bin/python scripts/compare_output_hashes.py /tmp/before /tmp/res/before.json before
    .venv/bin/python scripts/compare_output_hashes.py . /tmp/res/after.json after
    # then compare the two files (every configuration's stage hashes and subset sha256 must be equal)

`before|after` maps one configuration across the judge rework: before it, the default contrastive scorer judged
through the stub with text judgments; after it, the same judge is `scorer/judge=llm_text`.
Optional 4th argument: a comma-separated list of configurations to run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

tree, out_json, which = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
sys.path.insert(0, str(tree / "tests"))
from stub_server import StubServer  # noqa: E402
from tacos_responder import tacos_responder  # noqa: E402

work = out_json.with_suffix("")
work.mkdir(parents=True, exist_ok=True)
SMALL = ["dataset.limit=40", "selection.budget=6", "clustering.k=6", "scorer.n_boot=20"]
LLM_JUDGE = [] if which == "before" else ["scorer/judge=llm_text"]  # before: the default judged through the stub as text
ONLY = set(sys.argv[4].split(",")) if len(sys.argv) > 4 else None
CONFIGS = {
    "contrastive_default": [*SMALL, *LLM_JUDGE],
    "contrastive_text": [*SMALL, "scorer=contrastive_text"],
    "contrastive_0to100": [*SMALL, "scorer=contrastive_0to100"],
    "single": [*SMALL[:3], "scorer=single"],
    "wo_cluster": ["dataset.limit=40", "selection.budget=6", "scorer.n_boot=20", *LLM_JUDGE, "clustering=none"],
    "global_top": [*SMALL, *LLM_JUDGE, "selection=global_top"],
    "alpagasus": ["dataset.limit=40", "selection.budget=6", "scorer=alpagasus", "selection=alpagasus", "clustering=none"],
    "length": [*SMALL[:3], "scorer=length"],
    "random": ["dataset.limit=40", "selection=random", "selection.budget=6", "stages=[data,clean,select,export]"],
    "longest": ["dataset.limit=40", "selection=longest", "selection.budget=6", "stages=[data,clean,select,export]"],
    "full": ["dataset.limit=12", "selection=full", "stages=[data,clean,select,export]"],
    "refine": [*SMALL, *LLM_JUDGE, "stages=[data,clean,tag,normalize,cluster,score,select,export,refine]"],
    "k_unscaled": [*SMALL, *LLM_JUDGE, "clustering.scale_k=false"],
    "sixty": ["dataset.limit=60", "selection.budget=10", "clustering.k=8", "scorer.n_boot=20", *LLM_JUDGE],
}
env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
results = {}
with StubServer(responder=tacos_responder) as stub:
    for name, args in CONFIGS.items():
        if ONLY and name not in ONLY:
            continue
        base = ["llm=openai_compatible", f"llm.base_url={stub.base_url}", "llm.model=stub-judge", "logger=none",
                f"paths.output_dir={work / 'o' / name}", "client.backoff_base=0.01", f"hydra.run.dir={work / name}"]
        p = subprocess.run([sys.executable, "run.py", *base, *args], cwd=tree, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            results[name] = {"error": p.stderr[-1500:]}
            print(name, "FAILED", p.stderr[-800:], flush=True)
            continue
        ms = {m.parent.name: json.loads(m.read_text()) for m in (work / name).glob("*/manifest.json")}
        results[name] = {s: m["output_hash"] for s, m in sorted(ms.items())}
        for s in ("export", "refine"):
            if s in ms:
                results[name][f"{s}.subset_sha256"] = ms[s]["stats"].get("subset_sha256")
        print(name, "ok", flush=True)
old = json.loads(out_json.read_text()) if out_json.is_file() else {}
out_json.write_text(json.dumps({**old, **results}, indent=1, sort_keys=True))
