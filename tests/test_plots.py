"""Every report figure writes a non-empty PNG, also for empty inputs."""
from __future__ import annotations

import random

import pytest

from tacos import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

rng = random.Random(0)
CASES = {
    "tag_frequency_histogram": (
        {f"tag {i}" + (" with a rather long explanatory name" if i % 7 == 0 else ""): int(1000 / (i + 1)) + 1
         for i in range(300)},
    ),
    "cluster_size_bar": ({k: rng.randrange(50, 800) for k in range(50)},),
    "score_distribution": ({"bradley_terry": [rng.gauss(0, 1) for _ in range(500)],
                            "raw_mean": [rng.randrange(101) for _ in range(500)]},),
    "length_distribution": ([rng.randrange(0, 3000) for _ in range(2000)],
                            [rng.randrange(200, 3000) for _ in range(100)]),
    "position_bias_bar": (0.63, 0.71),
    "win_tie_lose_bar": ({"koala": (90, 40, 50), "vicuna": (40, 20, 20), "lima": (0, 0, 0)},),
}
EMPTY = {
    "tag_frequency_histogram": ({},),
    "cluster_size_bar": ({},),
    "score_distribution": ({"bradley_terry": []},),
    "length_distribution": ([], []),
    "position_bias_bar": (None, None),
    "win_tie_lose_bar": ({},),
}


def _check(path, expected):
    assert path == expected
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000


@pytest.mark.parametrize("name", sorted(CASES))
def test_plot_writes_png(tmp_path, name):
    out = tmp_path / "sub" / f"{name}.png"  # missing parent folders are created
    _check(getattr(plots, name)(*CASES[name], out), out)


@pytest.mark.parametrize("name", sorted(EMPTY))
def test_plot_handles_empty_input(tmp_path, name):
    out = tmp_path / f"{name}.png"
    _check(getattr(plots, name)(*EMPTY[name], out), out)


def test_titles_are_passed_through(tmp_path):
    out = plots.cluster_size_bar({0: 3, 1: 5}, str(tmp_path / "c.png"), title="Alpaca k=50")
    _check(out, tmp_path / "c.png")


def test_sweep_comparison_with_and_without_judged_runs(tmp_path):
    subsets = {"alpaca-tacos": {"chars_selected": 820.0, "chars_pool": 540.0, "markdown_selected": 0.4,
                                "markdown_pool": 0.2, "rho": 0.31},
               "alpaca-random": {"chars_selected": 530.0, "chars_pool": 540.0, "markdown_selected": 0.2,
                                 "markdown_pool": 0.2, "rho": None}}
    _check(plots.sweep_comparison({"alpaca-tacos vs random": 0.62, "x": None}, subsets, tmp_path / "a.png"),
           tmp_path / "a.png")
    _check(plots.sweep_comparison({}, subsets, tmp_path / "b.png"), tmp_path / "b.png")
    _check(plots.sweep_comparison({}, {}, tmp_path / "c.png"), tmp_path / "c.png")
