#!/usr/bin/env bash
# The paper's selection grid as Hydra sweeps (selection x ablation). Extra args go to every sweep, e.g.
#   ./multirun.sh dataset=alpaca llm=openai          ./multirun.sh --dry-run
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-.venv/bin/python}
EXTRA=()
for a in "$@"; do
  if [ "$a" = "--dry-run" ]; then EXTRA+=("dry_run=true"); else EXTRA+=("$a"); fi
done
# TACOS and its two ablations (scorer x clustering): contrastive/kmeans = TACOS, single = wo_contrastive, none = wo_cluster.
"$PY" run.py -m scorer=contrastive,single clustering=kmeans,none "${EXTRA[@]}"
# Baselines through the same harness.
"$PY" run.py -m experiment=baseline_random,baseline_longest,baseline_full,baseline_alpagasus "${EXTRA[@]}"
# SFT of every paper model on one exported subset, in one go (GPU machine; SLURM: add hydra/launcher=slurm_train):
#   TRAIN_DATASET=outputs/runs/DATE/TIME_RUN/export ./multirun.sh
if [ -n "${TRAIN_DATASET:-}" ]; then
  "$PY" run.py -m model=llama2_7b,llama2_13b,mistral7b stages=[train] "train.dataset=$TRAIN_DATASET" "${EXTRA[@]}"
fi
