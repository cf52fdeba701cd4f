"""Build data/judge_eval/external/alpaca_eval_gpt4_pairs.jsonl: GPT-4-labelled pairs from alpaca_eval's published
annotations (MEASUREMENT ONLY: these are AlpacaEval's evaluation instructions; nothing is ever tuned on them).

    python scripts/build_external_pairs.py --repo /path/to/alpaca_eval/git/dir   # a clone or bare mirror

Source: GitHub tatsu-lab/alpaca_eval, results/<model>/alpaca_eval_gpt4/annotations.json (annotator alpaca_eval_gpt4,
GPT-4; output_1 = text-davinci-003, the reference; output_2 = the model), for the AlpacaFarm-era models below.
Kept: decisive verdicts (preference 1 or 2), both outputs non-empty, length ratio (longer / shorter, chars) <= 1.25.
Sides are swapped for half the pairs (by a hash of the id) so "always the first" means nothing. Licence: alpaca_eval
is Apache-2.0; the instructions come from its evaluation set (research use).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "data" / "judge_eval" / "external" / "alpaca_eval_gpt4_pairs.jsonl"
MODELS = ("alpaca-farm-ppo-human", "alpaca-7b", "text_davinci_001")
MAX_RATIO = 1.25

README = """# External GPT-4-labelled pairs (measurement only)

`alpaca_eval_gpt4_pairs.jsonl`: {n} pairs built by `scripts/build_external_pairs.py` from alpaca_eval's published
GPT-4 annotations (annotator `alpaca_eval_gpt4`) of AlpacaFarm-era model outputs against text-davinci-003:
decisive verdicts only, length ratio <= {ratio}, sides swapped for half the pairs. `subset` = the model.
These are AlpacaEval evaluation instructions: used to MEASURE judges only, never to train or tune anything.
Licence: alpaca_eval is Apache-2.0 (outputs of the respective models; research use).

Sources:
{sources}

sha256: `{sha}`
"""


def annotations(repo: Path, model: str) -> tuple[list[dict], str]:
    path = f"results/{model}/alpaca_eval_gpt4/annotations.json"
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    text = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, text=True,
                          check=True).stdout
    return json.loads(text), f"tatsu-lab/alpaca_eval@{commit}:{path}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", type=Path, required=True)
    args = ap.parse_args()
    rows, sources = [], []
    for model in MODELS:
        items, source = annotations(args.repo, model)
        for a in items:
            o1, o2, pref = a["output_1"] or "", a["output_2"] or "", int(float(a.get("preference") or 0))
            if pref not in (1, 2) or not o1.strip() or not o2.strip():
                continue
            if max(len(o1), len(o2)) / min(len(o1), len(o2)) > MAX_RATIO:
                continue
            pid = "ae_" + hashlib.sha256(f"{model}\x1f{a['instruction']}".encode()).hexdigest()[:16]
            swap = int(pid[-1], 16) % 2 == 1
            rows.append({"id": pid, "instruction": a["instruction"], "input": "",
                         "output_1": o2 if swap else o1, "output_2": o1 if swap else o2,
                         "preference": (3 - pref) if swap else pref, "subset": model,
                         "dataset": a.get("dataset"), "generator_1": a["generator_2"] if swap else a["generator_1"],
                         "generator_2": a["generator_1"] if swap else a["generator_2"]})
        sources.append(source)
    rows.sort(key=lambda r: r["id"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    readme = OUT.parent / "README.md"
    readme.write_text(README.format(n=len(rows), ratio=MAX_RATIO, sources="\n".join(f"- `{s}`" for s in sources),
                                    sha=hashlib.sha256(OUT.read_bytes()).hexdigest()), encoding="utf-8")
    print(f"{len(rows)} pairs -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
