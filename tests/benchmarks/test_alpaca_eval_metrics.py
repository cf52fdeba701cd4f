"""AlpacaEval 2's metrics as tacos computes them (tacos.benchmarks.alpaca_eval_metrics, ported from alpaca_eval 0.6.6):
the released annotations of two leaderboard models reproduce their leaderboard rows; the port computes what the
package's own code computes on the same data; the length-controlled GLM with the bundled derivation of AlpacaEval's
df_gamed.csv (data/alpaca_eval/) reproduces the leaderboard's LC values."""
from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import tacos.benchmarks.alpaca_eval_metrics as metrics
from tacos.benchmarks.alpaca_eval_metrics import (DERIVED_GAMED_FILE, gamed_annotations_file,
                                              length_controlled_win_rate, win_rate)

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
    assert gamed_annotations_file(None) == DERIVED_GAMED_FILE and DERIVED_GAMED_FILE.is_file()
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


# The published GLM weights of the two models (src/alpaca_eval/metrics/weights/weighted_alpaca_eval_gpt4_turbo/
# length_controlled_v1/baseline_gpt4_1106_preview.csv at the rows file's source_commit): np.tanh(std_delta_len),
# instruction_difficulty, not_gamed_baseline; and the C their cross-validation chose (its not_gamed_baseline gradient).
PUBLISHED_WEIGHTS = {"alpaca-7b": (-2.2067864500930003, 0.9859274836495522, -3.690741791907489),
                     "gpt-3.5-turbo-1106": (-2.042129723534208, 1.0101354535205684, -1.9018508475471767)}
PUBLISHED_C = {"alpaca-7b": 21.544346900318832, "gpt-3.5-turbo-1106": 2.782559402207126}  # logspace(-4, 4, 10)[6], [5]


def _derived_or_env_gamed():
    """The bundled derivation, or AlpacaEval's own df_gamed.csv where TACOS_ALPACA_EVAL_LC_DIR points at one."""
    return gamed_annotations_file(os.environ.get("TACOS_ALPACA_EVAL_LC_DIR"))


@pytest.mark.parametrize("model", MODELS)
def test_bundled_instruction_difficulties_are_the_ones_alpaca_eval_used(model):
    """AlpacaEval's predict_winrate: with the published weights, the LC win rate is the mean over the 805 instructions
    of sigmoid(c + b * difficulty). The bundled difficulties give the leaderboard's value to 1e-9 points."""
    import pandas as pd

    difficulty = pd.read_csv(DERIVED_GAMED_FILE).drop_duplicates("index").set_index("index")["instruction_difficulty"]
    assert list(difficulty.index) == list(range(805))
    _, b, c = PUBLISHED_WEIGHTS[model]
    lc = 100 * np.mean(1 / (1 + np.exp(-(c + b * difficulty.to_numpy()))))
    assert lc == pytest.approx(ROWS["models"][model]["leaderboard_row"]["length_controlled_winrate"], abs=1e-9)


@pytest.mark.parametrize("model", MODELS)
def test_length_controlled_win_rate_reproduces_the_leaderboard(model, monkeypatch):
    """From the model's annotations, as a new model is scored. Measured with the bundled file: alpaca-7b +0.0006,
    gpt-3.5-turbo-1106 -0.080 points. The 0.08 is the cross-validation's choice of C: its scores at C = 2.78 and 21.5
    differ by ~2e-6 here, and they depend on per-fold sums of the gamed preferences that the derivation cannot
    recover (only their totals); AlpacaEval chose 2.78, we choose 21.5. Pinned to AlpacaEval's C both come within
    0.0015 (the rest: the gamed totals are known to ~4e-4 relative, liblinear's tolerance in the published fits)."""
    gamed = _derived_or_env_gamed()
    row = ROWS["models"][model]["leaderboard_row"]
    assert _lc(model, gamed)["length_controlled_winrate"] == pytest.approx(row["length_controlled_winrate"], abs=0.1)
    make = metrics._logistic_regression_cv
    monkeypatch.setattr(metrics, "_logistic_regression_cv", lambda: make().set_params(Cs=[PUBLISHED_C[model]]))
    assert _lc(model, gamed)["length_controlled_winrate"] == pytest.approx(row["length_controlled_winrate"], abs=0.002)


@pytest.mark.skipif(not os.environ.get("TACOS_ALPACA_EVAL_REPO"),
                    reason="TACOS_ALPACA_EVAL_REPO (a clone or mirror of tatsu-lab/alpaca_eval) is not set")
def test_bundled_lc_data_rebuilds(tmp_path):
    """scripts/build_alpaca_eval_lc_data.py gives the bundled file again (to float noise: Newton steps, BLAS)."""
    import importlib.util

    import pandas as pd

    script = Path(__file__).resolve().parents[2] / "scripts" / "build_alpaca_eval_lc_data.py"
    spec = importlib.util.spec_from_file_location("build_alpaca_eval_lc_data", script)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.main(["--repo", os.environ["TACOS_ALPACA_EVAL_REPO"], "--out", str(tmp_path)])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "df_gamed_derived.csv"), pd.read_csv(DERIVED_GAMED_FILE),
                                  check_exact=False, rtol=0, atol=1e-9)


def test_the_benchmark_computes_lc_by_default():
    """AlpacaEval2Benchmark with lc_data_dir null: the bundled file, an LC number (not None) from its annotations."""
    from tacos.benchmarks.alpaca_eval import AlpacaEval2Benchmark

    bench, m = AlpacaEval2Benchmark(), ROWS["models"]["alpaca-7b"]
    annotations = [{"preference": p, "output_1": "x" * n1, "output_2": "x" * n2, "index": i}
                   for p, n1, n2, i in zip(m["preference"], m["len_output_1"], m["len_output_2"], m["index"])]
    got = bench._length_controlled(annotations)
    assert got["length_controlled_winrate"] == pytest.approx(_lc("alpaca-7b", DERIVED_GAMED_FILE)
                                                             ["length_controlled_winrate"], rel=1e-12)
    assert AlpacaEval2Benchmark(lc_data_dir="/nonexistent")._length_controlled(annotations)[
        "length_controlled_winrate"] is None
