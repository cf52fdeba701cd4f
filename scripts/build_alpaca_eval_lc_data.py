"""Build data/alpaca_eval/df_gamed_derived.csv: what AlpacaEval 2's length-controlled (LC) win rate needs besides our
own annotations, derived from files of the GitHub repository tatsu-lab/alpaca_eval (AlpacaEval's own df_gamed.csv is
on the Hugging Face hub only).

    python scripts/build_alpaca_eval_lc_data.py --repo /path/to/alpaca_eval/git/dir   # a clone or bare mirror, ~1 min

The LC GLM (alpaca_eval metrics/glm_winrate.py, "length_controlled_v1") fits
    logit P(model better) = a * tanh(std_delta_len) + b * instruction_difficulty + c * not_gamed_baseline
on the model's 805 annotations plus the 2 x 805 annotations of gpt4_1106_preview_verbose / _concise (df_gamed.csv,
weight 0.1 each). What this script derives, and from which files (all at --commit):
1. instruction_difficulty (805 values): results/vicuna-{13b,7b}-v1.5/weighted_alpaca_eval_gpt4_turbo/
   weighted_alpaca_eval_gpt4_turbo/annotations.json keep the GLM's prediction `glm_preference` = sigmoid(c + b * d_i)
   per instruction; with that model's (b, c) in src/alpaca_eval/metrics/weights/weighted_alpaca_eval_gpt4_turbo/
   length_controlled_v1/baseline_gpt4_1106_preview.csv, d_i = (logit(glm_preference) - c) / b. The two models give
   the same d_i to 1e-7 (the JSON keeps 10 digits); we ship their mean.
2. std_delta_len of the gamed rows: (len(gpt4_1106_preview output) - len(gamed output)) / its std over the 805,
   from results/<model>/model_outputs.json (exact; alpaca_eval's 1e-4-character jitter changes nothing at 12 digits).
3. preference of the gamed rows: their annotations.json files are over 4 MiB and not in the mirror we read. The fit
   sees them only through T = sum_j p_j * (tanh(std_delta_len_j), instruction_difficulty_j) (the log loss on
   probabilities is linear in p_j; the gamed rows have no not_gamed_baseline feature), and T follows from any
   published fit's stationarity: for each model with annotations in the repository, its published weights theta
   (L1 logistic regression, liblinear: ||theta||_1 + C * loss, with C read off the not_gamed_baseline component)
   give T = sum_j sigmoid(theta . x_j) x_j + 10 * (gradient of the model's own rows + sign(theta) / C). The median
   over the models is shipped as preferences p_j = sigmoid(phi . (x_j, verbose_j, concise_j)) with phi solving the
   4 moment equations (T and each gamed model's leaderboard win rate): not the annotator's per-row preferences, but
   the same sufficient statistics. The 5-fold CV that picks C also sees per-fold sums, which we cannot recover; its
   scores of neighbouring C often differ by ~1e-6, so for some models C (and LC by up to ~0.15 points) differs.
AlpacaEval: code Apache-2.0, data and results CC BY-NC 4.0 (research use).
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
COMMIT = "cd543a149df89434d8a54582c0151c0b945c3d20"  # tatsu-lab/alpaca_eval HEAD when built ("Add GPT 4.1 judge")
BASELINE = "gpt4_1106_preview"
GAMED = ("gpt4_1106_preview_verbose", "gpt4_1106_preview_concise")  # df_gamed.csv's models, in its order
GLM_FILES = ("vicuna-13b-v1.5", "vicuna-7b-v1.5")  # the repository's annotations that keep glm_preference
WEIGHTS = "src/alpaca_eval/metrics/weights/weighted_alpaca_eval_gpt4_turbo/length_controlled_v1/" \
          "baseline_gpt4_1106_preview.csv"
LEADERBOARD = "src/alpaca_eval/leaderboards/data_AlpacaEval_2/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"
GAMED_WEIGHT = 0.1  # regularize_to_baseline_lambda 0.2 / 2 gamed models
N = 805


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


class Source:
    def __init__(self, repo: str, commit: str):
        self.repo, self.commit = repo, commit

    def read(self, path: str) -> bytes | None:
        r = subprocess.run(["git", "-C", self.repo, "show", f"{self.commit}:{path}"], capture_output=True)
        return r.stdout if r.returncode == 0 else None

    def annotation_files(self) -> list[str]:
        out = subprocess.run(["git", "-C", self.repo, "ls-tree", "-r", "--name-only", self.commit, "results"],
                             capture_output=True, text=True, check=True).stdout.split()
        return [p for p in out if p.endswith("/weighted_alpaca_eval_gpt4_turbo/annotations.json")
                and p.count("/") == 3]


def _std_delta(len_1, len_2) -> np.ndarray:
    delta = np.asarray(len_1, float) - np.asarray(len_2, float)
    return delta / pd.Series(delta).std()


def derive(src: Source) -> tuple[pd.DataFrame, dict]:
    weights = pd.read_csv(io.BytesIO(src.read(WEIGHTS)), index_col=0)
    board = pd.read_csv(io.BytesIO(src.read(LEADERBOARD)), index_col=0)
    a_col, b_col, c_col = weights.columns  # tanh(std_delta_len), instruction_difficulty, not_gamed_baseline

    # 1. instruction difficulties from the stored GLM predictions
    recovered = []
    for m in GLM_FILES:
        g = pd.read_json(io.BytesIO(src.read(f"results/{m}/weighted_alpaca_eval_gpt4_turbo/"
                                             "weighted_alpaca_eval_gpt4_turbo/annotations.json")))["glm_preference"]
        recovered.append((np.log(g / (1 - g)) - weights.loc[m, c_col]).to_numpy() / weights.loc[m, b_col])
    difficulty = np.mean(recovered, axis=0)

    # 2. the gamed rows' lengths
    outputs = {m: json.loads(src.read(f"results/{m}/model_outputs.json")) for m in (BASELINE, *GAMED)}
    instructions = [o["instruction"] for o in outputs[BASELINE]]
    len_ref = [len(o["output"]) for o in outputs[BASELINE]]
    assert len(instructions) == N and all([o["instruction"] for o in outputs[m]] == instructions for m in GAMED)
    std_delta = {m: _std_delta(len_ref, [len(o["output"]) for o in outputs[m]]) for m in GAMED}
    x_gamed = np.vstack([np.column_stack([np.tanh(std_delta[m]), difficulty]) for m in GAMED])

    # 3. the gamed rows' sufficient statistic T from every published fit whose annotations are in the repository
    estimates = {}
    for path in src.annotation_files():
        model = path.split("/")[1]
        if model in (BASELINE, *GAMED) or model not in weights.index or model not in board.index:
            continue
        raw = src.read(path)
        if raw is None:  # a file the mirror lacks (over 4 MiB)
            continue
        ann = pd.read_json(io.BytesIO(raw))
        if len(ann) != N or ann["output_1"].str.len().tolist() != len_ref:
            continue  # not one row per instruction in AlpacaEval's order
        p = ann["preference"].astype(float).replace({0.0: 1.5}).to_numpy() - 1
        x = np.column_stack([np.tanh(_std_delta(ann["output_1"].str.len(), ann["output_2"].str.len())), difficulty,
                             np.ones(N)])
        theta = weights.loc[model, [a_col, b_col, c_col]].to_numpy(dtype=float)
        keep = ~np.isnan(p)
        grad = ((_sigmoid(x @ theta) - p)[keep, None] * x[keep]).sum(0)
        inverse_c = -grad[2] / np.sign(theta[2])  # the not_gamed_baseline component: 1/C
        estimates[model] = (_sigmoid(x_gamed @ theta[:2])[:, None] * x_gamed).sum(0) + \
            (grad[:2] + np.sign(theta[:2]) * inverse_c) / GAMED_WEIGHT
    t = np.median(np.array(list(estimates.values())), axis=0)

    # 4. preferences with those statistics and the gamed models' leaderboard win rates (Newton on the convex dual)
    which = np.repeat(np.eye(len(GAMED)), N, axis=0)
    f = np.column_stack([x_gamed, which])
    target = np.r_[t, [N * board.loc[m, "win_rate"] / 100 for m in GAMED]]
    phi = np.zeros(f.shape[1])
    for _ in range(100):
        q = _sigmoid(f @ phi)
        step = np.linalg.solve((f * (q * (1 - q))[:, None]).T @ f, f.T @ q - target)
        phi -= step
        if np.abs(step).max() < 1e-13:
            break
    q = _sigmoid(f @ phi)
    assert np.abs(f.T @ q - target).max() < 1e-8
    gamed = pd.DataFrame({"model": np.repeat(GAMED, N), "index": np.tile(np.arange(N), len(GAMED)),
                          "preference": q, "std_delta_len": np.concatenate([std_delta[m] for m in GAMED]),
                          "instruction_difficulty": np.tile(difficulty, len(GAMED)), "not_gamed_baseline": False})
    spread = np.array(list(estimates.values())).std(axis=0)
    info = {"models_for_T": len(estimates), "T": t.tolist(), "T_std_across_models": spread.tolist(),
            "difficulty_max_disagreement": float(np.abs(recovered[0] - recovered[1]).max())}
    return gamed, info


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True, help="git directory of tatsu-lab/alpaca_eval (clone or bare mirror)")
    ap.add_argument("--commit", default=COMMIT)
    ap.add_argument("--out", default=str(REPO / "data" / "alpaca_eval"))
    args = ap.parse_args(argv)
    gamed, info = derive(Source(args.repo, args.commit))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gamed.to_csv(out / "df_gamed_derived.csv", index=False, float_format="%.12g", lineterminator="\n")
    print(json.dumps(info, indent=1))
    return info


if __name__ == "__main__":
    main()
