"""Rebuild tacos/judges/weights/quality_head.json (the QualityHead's weights), seeded, byte for byte.

    .venv/bin/python scripts/train_quality_head.py            # ~5-10 min on 2 shared cores (MiniLM embeddings)
    .venv/bin/python scripts/train_quality_head.py --check    # rebuild in memory, fail if the committed file differs

Training rows: AlpaGasus's random Alpaca rows (../shared/data/reference/alpagasus/random_9k.json) whose source row is
in the "train" part (tacos.data.splits.source_split), labelled 1 when Claude rated them >= 4.5 (the row is in
claude_t45.json), else 0; plus, as extra positives, the claude_t45.json rows outside random_9k whose source row is
also "train" (case-control sampling: the slopes stay consistent, only the intercept shifts, and a rating judge's order
does not read the intercept). Never a dev or test row, and never a row whose instruction is one of the five test sets'
or MT-Bench's questions (dropped before anything else). The regularisation C is chosen by a seeded 5-fold
cross-validation on the training rows only (AUC on the random rows of each held-out fold).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tacos.data.splits import source_split  # noqa: E402
from tacos.judges.quality_head import DEFAULT_WEIGHTS, SCALARS, embed, features  # noqa: E402
from tacos.records import Record  # noqa: E402

REFERENCE = REPO.parent / "shared" / "data" / "reference" / "alpagasus"
MODEL = "all-MiniLM-L6-v2"
SEED = 0
C_GRID = (0.003, 0.01, 0.03, 0.1)
N_COMPONENTS = 32  # principal components kept per embedding block (chosen on the dev halves: 16 / 32 / 64)
DIGITS = 6  # significant digits kept in the weights file: the same bytes across BLAS thread counts


def _norm(text: str) -> str:
    return " ".join((text or "").split()).lower()


def held_out_instructions() -> set[str]:
    """Normalised instructions of the five test sets and MT-Bench (every turn): never trained on."""
    from tacos.data.benchmark_sets import TEST_SETS, load_mt_bench, load_test_set

    out = {_norm(q.instruction) for name in TEST_SETS for q in load_test_set(name)}
    for q in load_mt_bench():
        out |= {_norm(t) for t in (q.turns or [q.instruction])}
    return out


def training_rows(reference: Path) -> tuple[list[Record], np.ndarray, np.ndarray, dict]:
    """(records, labels, is_random, provenance): the train-split rows, random rows first, then the extra positives."""
    random_rows = json.loads((reference / "random_9k.json").read_text(encoding="utf-8"))
    rated = json.loads((reference / "claude_t45.json").read_text(encoding="utf-8"))
    key = lambda r: (r["instruction"], r["input"], r["output"])  # noqa: E731
    good = {key(r) for r in rated}
    in_random = {key(r) for r in random_rows}
    banned = held_out_instructions()
    keep = lambda r: source_split(r["instruction"], r["input"]) == "train" and _norm(r["instruction"]) not in banned  # noqa: E731
    rows = [(r, int(key(r) in good), 1) for r in random_rows if keep(r)]
    seen = {key(r) for r, _, _ in rows}
    for r in rated:
        if key(r) not in in_random and key(r) not in seen and keep(r):
            seen.add(key(r))
            rows.append((r, 1, 0))
    records = [Record.make(k, r["instruction"], r["input"], r["output"]) for k, (r, _, _) in enumerate(rows)]
    labels = np.asarray([y for _, y, _ in rows])
    is_random = np.asarray([s for _, _, s in rows], dtype=bool)
    provenance = {name: hashlib.sha256((reference / name).read_bytes()).hexdigest()
                  for name in ("random_9k.json", "claude_t45.json")}
    return records, labels, is_random, provenance


def _fit(x: np.ndarray, y: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000, tol=1e-8).fit(x, y)


def _round(values) -> list[float]:
    return [float(f"{v:.{DIGITS}g}") for v in np.asarray(values, dtype=np.float64).ravel()]


def train(reference: Path = REFERENCE, embeddings: Path | None = None) -> dict:
    """Scalars + the first K principal components of the response embedding and of instruction x response (PCA and
    everything else fitted on the training rows), then a logistic regression; the PCA is folded into one linear map
    over the raw features, so the weights file holds one coefficient per raw feature."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    records, y, is_random, provenance = training_rows(reference)
    ei, eo = cached_embeddings(records, embeddings)
    x = features(records, ei, eo)
    ns, d = len(SCALARS), eo.shape[1]
    blocks = [x[:, ns:ns + d], x[:, ns + d:]]  # response, instruction x response
    pcas = [PCA(N_COMPONENTS, svd_solver="full", random_state=SEED).fit(b) for b in blocks]
    z_raw = np.hstack([x[:, :ns], *[p.transform(b) for p, b in zip(pcas, blocks)]])
    mean, scale = z_raw.mean(axis=0), z_raw.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (z_raw - mean) / scale
    folds = list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(z, y * 2 + is_random))
    cv = {}
    for c in C_GRID:
        aucs = []
        for fit_idx, held_idx in folds:
            held_idx = held_idx[is_random[held_idx]]  # judged on the natural rate, as the suites are
            model = _fit(z[fit_idx], y[fit_idx], c)
            aucs.append(roc_auc_score(y[held_idx], model.decision_function(z[held_idx])))
        cv[c] = float(np.mean(aucs))
    best = max(C_GRID, key=lambda c: (round(cv[c], 6), -c))  # the smallest C among equals: the simplest head
    model = _fit(z, y, best)
    w = model.coef_.ravel() / scale  # per standardised column -> per raw column of z_raw
    intercept = float(model.intercept_[0] - w @ mean)
    coef_scalars = w[:ns]
    coef_blocks = []
    for k, p in enumerate(pcas):
        wk = w[ns + k * N_COMPONENTS: ns + (k + 1) * N_COMPONENTS]
        coef_blocks.append(p.components_.T @ wk)  # PCA: components . (e - mean_) -> coef on e, constant
        intercept -= float(wk @ (p.components_ @ p.mean_))
    return {
        "what": "tacos.judges.quality_head.QualityHead weights: logit = coef . ((features - mean) / scale) + intercept",
        "built_by": "scripts/train_quality_head.py",
        "model": MODEL,
        "features": [*SCALARS, "response_emb[384]", "instruction_x_response_emb[384]"],
        "training": {"rows": int(len(y)), "positives": int(y.sum()), "random_rows": int(is_random.sum()),
                     "random_positives": int(y[is_random].sum()), "split": "source_split == train",
                     "label": "row in claude_t45.json (Claude rated >= 4.5)", "sources_sha256": provenance,
                     "pca_components_per_embedding": N_COMPONENTS, "C": best,
                     "cv_auc_random_rows": {str(c): round(v, 4) for c, v in cv.items()}, "seed": SEED},
        "mean": _round([0.0] * x.shape[1]), "scale": _round([1.0] * x.shape[1]),
        "coef": _round(np.concatenate([coef_scalars, *coef_blocks])), "intercept": _round([intercept])[0],
    }


def cached_embeddings(records: list[Record], cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM embeddings of the training rows, rounded to 5 decimals (float32 noise from batching is ~1e-7: the
    rounding keeps the weights byte-identical across runs); `cache` (an .npz) is read if it holds these rows."""
    ids = np.asarray([r.id for r in records])
    if cache is not None and cache.is_file():
        data = np.load(cache)
        if data["ids"].shape == ids.shape and (data["ids"] == ids).all():
            return data["ei"], data["eo"]
    ei, eo = (np.round(e.astype(np.float64), 5) for e in embed(records, MODEL))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, ids=ids, ei=ei, eo=eo)
    return ei, eo


def dumps(weights: dict) -> str:
    return json.dumps(weights, sort_keys=True, separators=(",", ":")) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--reference", type=Path, default=REFERENCE)
    ap.add_argument("--check", action="store_true", help="fail if the rebuilt weights differ from --out")
    ap.add_argument("--embeddings", type=Path, default=REPO / "outputs" / "quality_head" / "train_embeddings.npz",
                    help="cache of the training rows' MiniLM embeddings (computed when missing or stale)")
    args = ap.parse_args(argv)
    text = dumps(train(args.reference, args.embeddings))
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print("identical" if same else f"DIFFERENT from {args.out}")
        sys.exit(0 if same else 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.encode())} bytes)")


if __name__ == "__main__":
    main()
