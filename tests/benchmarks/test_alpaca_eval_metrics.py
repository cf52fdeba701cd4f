"""AlpacaEval 2's metrics as tacos computes them (tacos.benchmarks.alpaca_eval_metrics, ported from alpaca_eval 0.6.6):
the released annotations of two leaderboard models reproduce their leaderboard rows; the port computes what the
package's own code computes on the same data; the length-controlled GLM reproduces the leaderboard where AlpacaEval's
df_gamed.csv is at hand (it lives on the Hugging Face hub only)."""
from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from tacos.benchmarks.alpaca_eval_metrics import gamed_annotations_file, length_controlled_win_rate, win_rate

ROWS = json.loads((Path(__file__).parent / "data" / "alpaca_eval_leaderboard_rows.json").read_text())
MODELS = sorted(ROWS["models"])
WR_COLUMNS = ("win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total", "discrete_win_rate")


@pytest.mark.parametrize("model", MODELS)
def test_win_rate_reproduces_the_leaderboard(model):
    m = ROWS["models"][model]
    row = m["leaderboard_row"]
    got = win_rate(m["preference"])
    for column in WR_COLUMNS:
        assert got[column] == pytest.approx(row[column], rel=1e-12, abs=1e-12), column
    assert int(np.mean(m["len_output_2"])) == row["avg_length"]  # AlpacaEval: int(mean length of our outputs)


def test_win_rate_counts_draws_and_drops_what_is_not_a_preference():
    got = win_rate([2.0, 1.0, 1.5, 0, None, 1.75, 3.0])
    assert (got["n_wins"], got["n_wins_base"], got["n_draws"], got["n_total"]) == (2, 1, 2, 5)
    assert got["win_rate"] == pytest.approx(100 * (1 + 0 + 0.5 + 0.5 + 0.75) / 5)
    assert got["discrete_win_rate"] == pytest.approx(100 * (1 + 0 + 0.5 + 0.5 + 1) / 5)
    assert win_rate([])["win_rate"] is None


def _synthetic_gamed(path: Path, n: int = 805, seed: int = 0) -> np.ndarray:
    """A df_gamed.csv in AlpacaEval's columns (two gamed variants of the reference model), with made-up numbers."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    rows = []
    for model, pull in (("gpt4_1106_preview_verbose", 0.3), ("gpt4_1106_preview_concise", -0.4)):
        delta = rng.normal(size=n)
        rows += [{"model": model, "index": i, "preference": float(np.clip(0.5 + pull * np.tanh(delta[i])
                                                                          + 0.1 * rng.normal(), 0, 1)),
                  "std_delta_len": delta[i], "instruction_difficulty": difficulty[i], "not_gamed_baseline": False}
                 for i in range(n)]
    pd.DataFrame(rows).to_csv(path / "df_gamed.csv", index=False)
    return difficulty


def _lc(model: str, gamed: Path) -> dict:
    m = ROWS["models"][model]
    return length_controlled_win_rate(m["preference"], m["len_output_2"], m["len_output_1"], m["index"], gamed)


def test_length_controlled_win_rate_on_synthetic_gamed_data(tmp_path):
    _synthetic_gamed(tmp_path)
    gamed = gamed_annotations_file(str(tmp_path))
    assert gamed == tmp_path / "df_gamed.csv" and gamed_annotations_file(str(tmp_path / "nope")) is None
    first = _lc("alpaca-7b", gamed)
    assert first == _lc("alpaca-7b", gamed)  # deterministic (seeded folds and solver)
    assert 0 < first["length_controlled_winrate"] < 100 and first["lc_standard_error"] > 0
    # A model that loses everything is worse than one that wins some, length controlled or not.
    assert first["length_controlled_winrate"] < _lc("gpt-3.5-turbo-1106", gamed)["length_controlled_winrate"]


@pytest.mark.parametrize("model", MODELS)
def test_the_port_computes_what_alpaca_eval_computes(model, tmp_path, monkeypatch):
    """Same annotations, same df_gamed.csv (synthetic: the real one is on the hub only): the package's own
    get_winrate and get_length_controlled_winrate give the same numbers. alpaca_eval imports pkg_resources, which this
    stack's setuptools no longer ships: an empty stand-in is enough for the metrics (never called there)."""
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            monkeypatch.setitem(sys.modules, "pkg_resources", types.ModuleType("pkg_resources"))
    glm = pytest.importorskip("alpaca_eval.metrics.glm_winrate", reason="alpaca_eval (0.6.6) is not installed")
    import pandas as pd
    from alpaca_eval.metrics import get_winrate

    _synthetic_gamed(tmp_path)
    monkeypatch.setattr(glm, "hf_hub_download", lambda **kw: str(tmp_path / "df_gamed.csv"))
    m = ROWS["models"][model]
    df = pd.DataFrame({"preference": m["preference"], "index": m["index"],
                       "output_1": ["x" * n for n in m["len_output_1"]],
                       "output_2": ["x" * n for n in m["len_output_2"]],
                       "generator_1": "gpt4_1106_preview", "generator_2": model, "annotator": "a"})
    theirs = glm.get_length_controlled_winrate(df, save_weights_dir=None, is_warn_extreme_changes=False)
    ours = {**win_rate(m["preference"]), **_lc(model, tmp_path / "df_gamed.csv")}
    assert get_winrate(df)["win_rate"] == pytest.approx(ours["win_rate"], rel=1e-12)
    for column in (*WR_COLUMNS, "length_controlled_winrate", "lc_standard_error"):
        assert ours[column] == pytest.approx(theirs[column], rel=1e-9, abs=1e-12), column


@pytest.mark.parametrize("model", MODELS)
def test_length_controlled_win_rate_reproduces_the_leaderboard(model):
    """Runs where AlpacaEval's df_gamed.csv is at hand: TACOS_ALPACA_EVAL_LC_DIR, or the local Hugging Face cache
    (huggingface-cli download tatsu-lab/alpaca_eval df_gamed.csv --repo-type dataset)."""
    gamed = gamed_annotations_file(os.environ.get("TACOS_ALPACA_EVAL_LC_DIR"))
    if gamed is None:
        pytest.skip("AlpacaEval's df_gamed.csv is not here: it is on the Hugging Face hub only (dataset "
                    "tatsu-lab/alpaca_eval), and its instruction difficulties cannot be derived from the GitHub "
                    "repository (tacos/benchmarks/alpaca_eval_metrics.py says why)")
    row = ROWS["models"][model]["leaderboard_row"]
    assert _lc(model, gamed)["length_controlled_winrate"] == pytest.approx(row["length_controlled_winrate"], abs=0.01)
