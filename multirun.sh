#!/usr/bin/env bash
# The paper's grid as Hydra sweeps, in one sweep root and one W&B group:
#   1. baselines x model (LIMA; random, longest, full, AlpaGasus of each pool): SFT + MT-Bench; their answers are
#      registered by name, so that
#   2. TACOS x model on each pool is judged pairwise (both orders) against them (benchmarks=paper) + MT-Bench, and
#   3. the ablations (wo_contrastive, wo_cluster) and refined TACOS on ABLATION_DATASET x ABLATION_MODELS likewise.
# Runs that share a stage with identical config share its output (paths.store_dir): each selection is computed
# once for all models. Every extra argument goes to every sweep.
#   ./multirun.sh --dry-run                      # the grid: LLM calls, tokens, cost, GPU hours per run; runs nothing
#   ./multirun.sh llm=openai                     # the real thing (a GPU machine; on SLURM add hydra/launcher=slurm_train)
#   MODELS=mistral7b DATASETS=alpaca ./multirun.sh --dry-run
# Pools: TACOS_ALPACA_PATH, TACOS_EVOL_PATH, TACOS_LIMA_PATH (see conf/dataset/*.yaml).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-.venv/bin/python}
MODELS=${MODELS:-llama2_7b,llama2_13b,mistral7b}
ABLATION_MODELS=${ABLATION_MODELS:-llama2_7b}
ABLATION_DATASET=${ABLATION_DATASET:-alpaca}   # the paper ran the ablations on Alpaca with LLaMA2-7B
DATASETS=${DATASETS:-alpaca evol_instruct}
STAMP=$(date +%Y-%m-%d_%H-%M-%S)
ROOT=${SWEEP_ROOT:-outputs/multirun/paper_$STAMP}
GROUP=${WANDB_GROUP:-paper_$STAMP}
DRY=0
EXTRA=()
for a in "$@"; do
  if [ "$a" = "--dry-run" ]; then DRY=1; EXTRA+=("dry_run=true"); else EXTRA+=("$a"); fi
done

# The pools and LIMA must exist before anything starts (a grid that fails in its 12th job wastes the first 11). A dry
# run needs none of them: a pool that is not here is forecast at its known size (dataset.expected_rows) from rows like
# the bundled sample's (marked estimate), and without the LIMA file its sweep is left out of the forecast.
missing=()
need() {  # need ENV_VAR DEFAULT_PATH WHAT
  local path=${!1:-$2}
  [ -e "$path" ] || missing+=("$3 not found at $path: set $1=/path/to/file")
}
LIMA_FILE=${TACOS_LIMA_PATH:-data/lima/fastchat_lima_1k.json}
need TACOS_LIMA_PATH data/lima/fastchat_lima_1k.json "LIMA-1k (FastChat JSON)"
for ds in $DATASETS; do
  case $ds in
    alpaca) need TACOS_ALPACA_PATH data/alpaca/alpaca_data.json "Alpaca-52k (alpaca_data.json)" ;;
    evol_instruct) need TACOS_EVOL_PATH data/evol_instruct/WizardLM_evol_instruct_70k_data.json "Evol-Instruct-70k" ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$DRY" = 1 ]; then
    echo "note: a dry run without these files forecasts the pools at their known size (estimates):" >&2
    printf '  %s\n' "${missing[@]}" >&2
  else
    echo "error: the grid needs these files (or pick pools with DATASETS=...):" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 2
  fi
fi

# A failed sweep (a job that failed: run.py lists them at the sweep's end) does not stop the grid: the next sweeps
# run, and the script exits non-zero at the end with the failed sweeps listed.
SWEEPS=0
FAILED=()
sweep() {  # sweep NAME OVERRIDES...: one Hydra multirun under $ROOT/NAME
  local name=$1
  shift
  echo "== $name: $*"
  SWEEPS=$((SWEEPS + 1))
  if ! "$PY" run.py -m "$@" "hydra.sweep.dir=$ROOT/$name" "logger.group=$GROUP" "${EXTRA[@]}"; then
    FAILED+=("$name")
    echo "== $name: failed (its failed jobs are listed above); going on with the next sweep" >&2
  fi
}

if [ -e "$LIMA_FILE" ]; then
  sweep lima experiment=baseline_lima "model=$MODELS"
else
  echo "== lima: left out of this dry run ($LIMA_FILE not found: set TACOS_LIMA_PATH)" >&2
fi
for ds in $DATASETS; do
  tacos=tacos_alpaca
  [ "$ds" = evol_instruct ] && tacos=tacos_evol
  sweep "${ds}_baselines" experiment=baseline_random,baseline_longest,baseline_full,baseline_alpagasus,baseline_ifd \
    "dataset=$ds" "model=$MODELS"
  sweep "${ds}_tacos" "experiment=$tacos" "dataset=$ds" "model=$MODELS"
  if [ "$ds" = "$ABLATION_DATASET" ]; then
    sweep "${ds}_ablations" experiment=wo_contrastive,wo_cluster,refined "dataset=$ds" "model=$ABLATION_MODELS"
  fi
done

# The forecast / report covers whatever the sweeps left, failed ones included.
summary=plan
[ "$DRY" = 1 ] || summary=report
summary_ok=1
"$PY" -m tacos.cli "$summary" "$ROOT" || summary_ok=0

if [ ${#FAILED[@]} -gt 0 ]; then
  echo "error: ${#FAILED[@]} of $SWEEPS sweeps failed (each failed job's run dir holds its error.log):" >&2
  for name in "${FAILED[@]}"; do echo "  $name: $ROOT/$name" >&2; done
fi
if [ "$summary_ok" = 0 ]; then
  echo "error: $PY -m tacos.cli $summary $ROOT failed" >&2
fi
if [ ${#FAILED[@]} -gt 0 ] || [ "$summary_ok" = 0 ]; then
  exit 1
fi
