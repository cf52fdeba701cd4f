"""Write data/reference_sets/<name>.ids: the content ids of the released TACOS subsets (for the overlap report).

    python scripts/build_reference_ids.py [REFERENCE_DIR]     (default ../shared/data/reference)
"""
from __future__ import annotations

import sys
from pathlib import Path

from tacos.data import load_records

REPO = Path(__file__).resolve().parents[1]
SETS = {"tacos_alpaca_1k": "selected/filtered_alpaca_1k_opencs.json",
        "tacos_evol_instruct_1k": "selected/filtered_evol_instruct_1k_opencs.json"}


def main() -> None:
    ref = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "reference"
    out = REPO / "data" / "reference_sets"
    out.mkdir(parents=True, exist_ok=True)
    for name, rel in SETS.items():
        ids = sorted({r.id for r in load_records(ref / rel, format="sharegpt", on_duplicate="drop")})
        (out / f"{name}.ids").write_text("\n".join(ids) + "\n", encoding="utf-8")
        print(f"{name}: {len(ids)} ids")


if __name__ == "__main__":
    main()
