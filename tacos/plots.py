"""The figures the reports show: one function per figure, each writes a PNG and returns its path.

Built on `matplotlib.figure.Figure` (Agg canvas, imported lazily) rather than pyplot, so plotting never
touches global GUI state and works headless and from worker threads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

DPI = 110


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure  # lazy: keep matplotlib out of the import path of the pipeline

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def tag_frequency_histogram(counts: Mapping[str, int], path: str | Path, top: int = 30, title: str = "") -> Path:
    """Left: the `top` most frequent tags. Right: how many tags occur how often (log–log), the long tail."""
    import numpy as np

    fig, (ax_top, ax_dist) = _figure(13, max(4.0, 0.22 * min(top, len(counts)) + 1.5), ncols=2)
    fig.suptitle(title or f"Tag frequencies ({len(counts):,} distinct tags, {sum(counts.values()):,} occurrences)")
    if not counts:
        _no_data(ax_top, "tags")
        _no_data(ax_dist, "tags")
        return _save(fig, path)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    names = [n if len(n) <= 40 else n[:37] + "..." for n, _ in ranked][::-1]  # most frequent on top
    ax_top.barh(names, [c for _, c in ranked][::-1], color="tab:blue")
    ax_top.set_xlabel("occurrences")
    ax_top.set_title(f"top {len(ranked)} tags")
    ax_top.tick_params(axis="y", labelsize=8)

    values = np.array(list(counts.values()))
    bins = np.unique(np.logspace(0, np.log10(max(values.max(), 1)) + 1e-9, 30).astype(int))
    ax_dist.hist(values, bins=np.append(bins, bins[-1] + 1), color="tab:orange")
    ax_dist.set_xscale("log")
    ax_dist.set_yscale("log")
    ax_dist.set_xlabel("occurrences of a tag")
    ax_dist.set_ylabel("number of tags")
    ax_dist.set_title("count distribution")
    return _save(fig, path)


def cluster_size_bar(sizes: Mapping[int, int], path: str | Path, title: str = "") -> Path:
    """Members per cluster, largest first, with the mean as a dashed line."""
    fig, (ax,) = _figure(max(6.0, min(0.18 * len(sizes) + 2, 18.0)), 4.5)
    ax.set_title(title or f"Cluster sizes ({len(sizes)} clusters, {sum(sizes.values()):,} memberships)")
    if not sizes:
        _no_data(ax, "clusters")
        return _save(fig, path)
    ranked = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
    xs = range(len(ranked))
    ax.bar(xs, [n for _, n in ranked], color="tab:blue")
    ax.axhline(sum(sizes.values()) / len(sizes), color="black", ls="--", lw=1, label="mean")
    if len(ranked) <= 60:  # beyond that the ids are unreadable: the shape is what matters
        ax.set_xticks(list(xs), [str(k) for k, _ in ranked], rotation=90, fontsize=7)
    ax.set_xlabel("cluster id (sorted by size)")
    ax.set_ylabel("members")
    ax.legend()
    return _save(fig, path)


def score_distribution(scores: Mapping[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """One histogram panel per score kind (their scales differ, e.g. Bradley–Terry vs raw judge mean)."""
    import numpy as np

    fig, axes = _figure(4.5 * max(len(scores), 1), 4, ncols=max(len(scores), 1))
    fig.suptitle(title or "Score distributions")
    if not scores:
        _no_data(axes[0], "scores")
    for ax, (name, values) in zip(axes, scores.items()):
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        ax.set_title(f"{name} (n={len(values):,})")
        if not len(values):
            _no_data(ax, "scores")
            continue
        ax.hist(values, bins=40, color="tab:green")
        ax.axvline(np.median(values), color="black", ls="--", lw=1, label=f"median {np.median(values):.3g}")
        ax.set_xlabel(name)
        ax.set_ylabel("records")
        ax.legend()
    return _save(fig, path)


def length_distribution(pool_lengths: Sequence[int], selected_lengths: Sequence[int], path: str | Path,
                        title: str = "") -> Path:
    """Output length of the selected records against the pool (fractions on shared log-spaced bins)."""
    import numpy as np

    fig, (ax,) = _figure(7, 4.5)
    ax.set_title(title or "Output length: selected vs pool")
    pool = np.asarray(pool_lengths, dtype=float)
    sel = np.asarray(selected_lengths, dtype=float)
    both = np.concatenate([pool, sel])
    if not len(both):
        _no_data(ax, "lengths")
        return _save(fig, path)
    bins = np.logspace(0, np.log10(max(both.max(), 1) + 1), 40)
    for values, name, colour in ((pool, "pool", "tab:grey"), (sel, "selected", "tab:red")):
        if len(values):
            med = np.median(values)
            # Fractions, not densities: on log-spaced bins a density would inflate the narrow short-length bins.
            ax.hist(np.maximum(values, 1), bins=bins, weights=np.full(len(values), 1 / len(values)), alpha=0.5,
                    color=colour, label=f"{name} (n={len(values):,}, median {med:.0f})")
            ax.axvline(max(med, 1), color=colour, ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("output length (log scale; 0 shown as 1)")
    ax.set_ylabel("fraction of records")
    ax.legend()
    return _save(fig, path)


def position_bias_bar(first_win_rate: float | None, consistency: float | None, path: str | Path) -> Path:
    """Judge position bias: first-presented win rate (0.5 = unbiased) and both-order agreement (1 = ideal)."""
    fig, (ax,) = _figure(5, 3.5)
    ax.set_title("Pairwise judge: position bias")
    names = ["first-position\nwin rate", "order\nconsistency"]
    values = [first_win_rate, consistency]
    ax.bar(names, [v if v is not None else 0.0 for v in values], color=["tab:orange", "tab:blue"])
    for x, v in enumerate(values):
        ax.text(x, (v or 0.0) + 0.02, "n/a" if v is None else f"{v:.2f}", ha="center")
    ax.axhline(0.5, color="black", ls="--", lw=1, label="unbiased win rate")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("fraction")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def win_tie_lose_bar(results: Mapping[str, tuple[int, int, int]], path: str | Path, title: str = "") -> Path:
    """Per test set, stacked win / tie / lose fractions with the counts written in each segment."""
    fig, (ax,) = _figure(8, 0.5 * max(len(results), 1) + 1.8)
    ax.set_title(title or "Pairwise evaluation: win / tie / lose")
    if not results:
        _no_data(ax, "results")
        return _save(fig, path)
    names = list(results)[::-1]  # first test set on top
    labels = [f"{name} (n={sum(results[name])})" for name in names]
    left = [0.0] * len(names)
    for part, colour in ((0, "tab:green"), (1, "tab:grey"), (2, "tab:red")):
        fractions = []
        for name in names:
            total = sum(results[name])
            fractions.append(results[name][part] / total if total else 0.0)
        bars = ax.barh(labels, fractions, left=left, color=colour, label=("win", "tie", "lose")[part])
        for bar, name, frac in zip(bars, names, fractions):
            if frac >= 0.06:
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height() / 2,
                        str(results[name][part]), ha="center", va="center", color="white", fontsize=8)
        left = [a + b for a, b in zip(left, fractions)]
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of questions")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3)
    return _save(fig, path)


def mt_bench_radar(per_category: Mapping[str, float | None], path: str | Path, title: str = "") -> Path:
    """Per-category MT-Bench means (1-10) on a polar plot; categories without a complete mean are left out."""
    import numpy as np
    from matplotlib.figure import Figure

    values = {c: v for c, v in per_category.items() if v is not None}
    fig = Figure(figsize=(5.5, 5.5), layout="constrained")
    ax = fig.add_subplot(projection="polar")
    ax.set_title(title or "MT-Bench per category")
    if values:
        angles = np.linspace(0, 2 * np.pi, len(values), endpoint=False).tolist()
        ax.plot(angles + angles[:1], list(values.values()) + [next(iter(values.values()))], color="tab:blue")
        ax.fill(angles, list(values.values()), color="tab:blue", alpha=0.25)
        ax.set_xticks(angles, list(values))
    else:
        ax.text(0.5, 0.5, "no complete category", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_ylim(0, 10)
    return _save(fig, path)


def sweep_comparison(win_rates: Mapping[str, float | None], subsets: Mapping[str, Mapping[str, float | None]],
                     path: str | Path, title: str = "") -> Path:
    """Runs side by side (TACOS, its ablations, the baselines): win rate per run and baseline (left, when anything was
    judged), then per selection run what its subset prefers: mean response length and markdown share of the selected
    rows (bars) against the pool (black ticks), and the score–length rho (0 = the score ignores length)."""
    judged = {k: v for k, v in win_rates.items() if v is not None}
    panels = (["win"] if judged else []) + ["chars", "markdown", "rho"]
    rows = max(len(judged), len(subsets), 1)
    fig, axes = _figure(3.6 * len(panels), 0.32 * rows + 1.8, ncols=len(panels))
    fig.suptitle(title or f"Runs compared ({len(subsets)} selection run(s), {len(judged)} judged row(s))")
    axes = dict(zip(panels, axes))
    if judged:
        ax = axes["win"]
        names = list(judged)[::-1]
        ax.barh(names, [judged[n] for n in names], color="tab:green")
        ax.axvline(0.5, color="black", ls="--", lw=1)
        ax.set_xlim(0, 1)
        ax.set_xlabel("win rate (wins + ties/2)")
        ax.tick_params(axis="y", labelsize=7)
    names = list(subsets)[::-1]
    for key, label, colour in (("chars", "mean response length (chars)", "tab:blue"),
                               ("markdown", "markdown share", "tab:purple"), ("rho", "score–length rho", "tab:orange")):
        ax = axes[key]
        ax.set_xlabel(label)
        if not names:
            _no_data(ax, "selection runs")
            continue
        if key == "rho":
            values = [subsets[n].get("rho") for n in names]
            ax.barh(names, [v if v is not None else 0.0 for v in values], color=colour)
            for y, v in enumerate(values):
                if v is None:
                    ax.text(0, y, " n/a", va="center", fontsize=7, color="grey")
            ax.axvline(0, color="black", lw=1)
            ax.set_xlim(-1, 1)
        else:
            sel = [subsets[n].get(f"{key}_selected") for n in names]
            pool = [subsets[n].get(f"{key}_pool") for n in names]
            ax.barh(names, [v or 0.0 for v in sel], color=colour, label="selected")
            ax.scatter([v for v in pool if v is not None], [y for y, v in enumerate(pool) if v is not None],
                       marker="|", s=200, color="black", label="pool", zorder=3)
            if key == "markdown":
                ax.set_xlim(0, 1)
            ax.legend(loc="lower right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        if key != panels[len(panels) - 3]:  # run names once, on the first subset panel
            ax.set_yticks(range(len(names)), [""] * len(names))
    return _save(fig, path)
