"""AlpacaEval 2's leaderboard numbers from preference annotations, computed as the `alpaca_eval` package computes them.

Ported from alpaca_eval 0.6.6 (Apache-2.0, github.com/tatsu-lab/alpaca_eval): `metrics/winrate.py::get_winrate`
(AbsoluteScoringRule / ZeroOneScoringRule in `metrics/helpers.py`) and `metrics/glm_winrate.py::
get_length_controlled_winrate` with GLM "length_controlled_v1" (Dubois, Galambosi, Liang, Hashimoto, "Length-
Controlled AlpacaEval: A Simple Way to Debias Automatic Evaluators", arXiv:2404.04475, 2024). Ported rather than
imported: the package imports `pkg_resources`, which the setuptools this stack pins no longer ships.

Preferences follow AlpacaEval: 1 = output_1 (the reference model) is better, 2 = output_2 (ours) is better, 1.5 (or
0) a draw, anything in between a weighted preference. The length-controlled GLM
    logit P(ours better) = a * tanh(std_delta_len) + b * instruction_difficulty + c * not_gamed_baseline
is fitted on our annotations plus AlpacaEval's annotations of the reference model's verbose / concise variants
(`df_gamed.csv`, weight lambda/2 = 0.1 each: the regularisation to the baseline), with L1 logistic regression chosen
by 5-fold grouped cross-validation on the continuous log loss; the LC win rate is the mean predicted P(ours better)
with std_delta_len = 0. AlpacaEval keeps `df_gamed.csv` (which also holds the 805 instruction difficulties) on the
Hugging Face hub only; by default we use data/alpaca_eval/df_gamed_derived.csv, derived from the GitHub repository
by scripts/build_alpaca_eval_lc_data.py (data/alpaca_eval/README.md): the difficulties exactly (from the GLM
predictions stored with two models' annotations), the gamed rows' lengths exactly, and their preferences as the
sufficient statistics the published fits imply. With it the leaderboard's LC values come back to ~0.001 points, or
~0.1 where the cross-validation's near-tie picks another C (tests/benchmarks/test_alpaca_eval_metrics.py).
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Sequence

import numpy as np

from tacos.paths import BUNDLED_DATA_DIR

GAMED_FILE = "df_gamed.csv"  # AlpacaEval's name (Hugging Face dataset tatsu-lab/alpaca_eval)
DERIVED_GAMED_FILE = BUNDLED_DATA_DIR / "alpaca_eval" / "df_gamed_derived.csv"
REGULARIZE_TO_BASELINE_LAMBDA = 0.2  # GLM_INFO["length_controlled_v1"]
N_SPLITS = 5


def _head2head(preferences: np.ndarray) -> dict:
    """AlpacaEval's BaseScoringRule.describe_head2head on preprocessed predictions (0 means a draw, as 1.5)."""
    n_draws = int(((preferences == 1.5) | (preferences == 0)).sum())
    p = np.where(preferences == 0.0, 1.5, preferences)
    p = p[(p >= 1) & (p <= 2)] - 1  # not a preference (NaN, out of range): dropped
    return {"win_rate": float(p.mean() * 100) if len(p) else None,
            "standard_error": float(p.std(ddof=1) / np.sqrt(len(p)) * 100) if len(p) > 1 else None,
            "n_wins": int((p > 0.5).sum()), "n_wins_base": int((p < 0.5).sum()), "n_draws": n_draws,
            "n_total": int(len(p))}


def win_rate(preferences: Sequence[float | None]) -> dict:
    """get_winrate: the (weighted) win rate with its standard error and counts, plus `discrete_win_rate` (each
    preference rounded to a win, a loss or, exactly 1.5, a draw)."""
    p = np.asarray([np.nan if x is None else x for x in preferences], dtype=float)
    out = _head2head(p)
    discrete = np.where(p == 1.5, 0.0, p)
    discrete = np.where(np.isnan(discrete), np.nan, np.round(discrete))
    out["discrete_win_rate"] = _head2head(np.where(discrete == 0.0, 1.5, discrete))["win_rate"]
    return out


def gamed_annotations_file(folder: str | None) -> Path | None:
    """The gamed annotations the LC win rate uses: AlpacaEval's own df_gamed.csv in `folder` when given (None if it
    is not there), else the bundled derivation data/alpaca_eval/df_gamed_derived.csv."""
    if folder:
        p = Path(folder).expanduser() / GAMED_FILE
        return p if p.is_file() else None
    return DERIVED_GAMED_FILE if DERIVED_GAMED_FILE.is_file() else None


def _logistic_regression_cv():
    """LogisticRegressionCV as alpaca_eval's fit_LogisticRegressionCV sets it up (L1, liblinear, no intercept,
    random_state 123), in the spelling of the installed scikit-learn (>= 1.8 says L1 with l1_ratios)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GroupKFold

    params = inspect.signature(LogisticRegressionCV).parameters
    l1 = {"l1_ratios": (1.0,)} if params["penalty"].default == "deprecated" else {"penalty": "l1"}
    extra = {"use_legacy_attributes": False} if "use_legacy_attributes" in params else {}
    scorer = make_scorer(_logloss_continuous, response_method="predict_proba", greater_is_better=False)
    scorer = scorer.set_score_request(true_sample_weight=True, true_prob=True)
    return LogisticRegressionCV(cv=GroupKFold(n_splits=N_SPLITS), scoring=scorer, random_state=123, dual=False,
                                solver="liblinear", n_jobs=None, fit_intercept=False, **l1, **extra)


def _logloss_continuous(y_true, y_pred, true_prob, true_sample_weight=None):
    """alpaca_eval's logloss_continuous: the log loss against probabilities (the duplicated rows carry them)."""
    y = np.where(y_true == 1, true_prob, 1 - true_prob)
    p = np.clip(y_pred, 1e-15, 1 - 1e-15)
    loss = y * np.log(p) + (1 - y) * np.log(1 - p)
    if true_sample_weight is not None:
        loss = loss * true_sample_weight
    return -np.mean(loss)


def length_controlled_win_rate(preferences: Sequence[float | None], len_ours: Sequence[int],
                               len_reference: Sequence[int], indices: Sequence[int], gamed_file: Path) -> dict:
    """{"length_controlled_winrate", "lc_standard_error"} of the annotations (ours as output_2) on the instructions
    `indices` (positions in AlpacaEval's 805), with a df_gamed.csv in AlpacaEval's columns. As AlpacaEval: a missing
    preference (None) is left out of the fit but its instruction still counts in the mean prediction."""
    import pandas as pd
    import sklearn

    gamed = pd.read_csv(gamed_file).drop(columns=["model"])
    # As glm_winrate._get_featurized_data: the difficulty of an instruction is looked up by row label among the
    # first rows of each index.
    difficulty = gamed.drop_duplicates("index")["instruction_difficulty"]
    delta = np.asarray(len_reference, dtype=float) - np.asarray(len_ours, dtype=float)  # len_1 - len_2
    ours = pd.DataFrame({"preference": np.asarray([np.nan if x is None else x for x in preferences], dtype=float),
                         "index": list(indices)})
    ours["std_delta_len"] = delta / pd.Series(delta).std()
    ours["preference"] = ours["preference"].replace({0.0: 1.5}) - 1
    ours["instruction_difficulty"] = [difficulty[i] for i in ours["index"]]
    ours["not_gamed_baseline"] = True
    both = pd.concat([gamed, ours], axis=0)
    weight = both["not_gamed_baseline"].astype(float) + \
        (REGULARIZE_TO_BASELINE_LAMBDA * ~both["not_gamed_baseline"].astype(bool)).astype(float) / 2
    keep = both["preference"].notna().to_numpy()
    x = _design(both)[keep]
    p, w = both["preference"].to_numpy(dtype=float)[keep], weight.to_numpy(dtype=float)[keep]
    # Fitted on probabilities: every row twice, once labelled 1 and once 0, weighted by P and 1 - P.
    x2, y2 = np.vstack([x, x]), np.concatenate([np.ones(len(x)), np.zeros(len(x))])
    true_prob, true_weight = np.concatenate([p, 1 - p]), np.concatenate([w, w])
    groups = np.concatenate([np.arange(len(x)), np.arange(len(x))])
    with sklearn.config_context(enable_metadata_routing=True):
        model = _logistic_regression_cv().set_fit_request(sample_weight=True)
        model.fit(x2, y2, sample_weight=true_prob * true_weight, groups=groups, true_sample_weight=true_weight,
                  true_prob=true_prob)
        test = ours.assign(std_delta_len=0.0)
        predicted = model.predict_proba(_design(test))[:, 1]
    return {"length_controlled_winrate": float(predicted.mean() * 100),
            "lc_standard_error": float(pd.Series(predicted).sem() * 100)}


def _design(df) -> np.ndarray:
    """The formula's columns, in its order: np.tanh(std_delta_len) + instruction_difficulty + not_gamed_baseline."""
    return np.column_stack([np.tanh(df["std_delta_len"].to_numpy(dtype=float)),
                            df["instruction_difficulty"].to_numpy(dtype=float),
                            df["not_gamed_baseline"].astype(float).to_numpy()])
