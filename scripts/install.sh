#!/usr/bin/env bash
# Install TACOS into a virtual environment (default .venv). Idempotent.
#   TORCH=cpu (default) | cuda     cpu: torch 2.13.0+cpu and stand-ins for torchvision/torchaudio (~2.5 GB, no CUDA
#                                  libraries); cuda: torch 2.14.1 + torchvision 0.29.1 + torchaudio 2.11.0 (~7 GB)
#   EXTRAS=dev,eval,train,sweep (default: everything the tests exercise) | dev (selection only)
#   VENV=.venv      PYTHON=python3.11
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH=${TORCH:-cpu}
EXTRAS=${EXTRAS:-dev,eval,train,sweep}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3 || echo python3)}

# Python 3.11 only (pyproject's requires-python): say so now, not after a minute of resolving.
python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; }
if [ -x "$VENV/bin/python" ] && ! python_ok "$VENV/bin/python"; then
  echo "error: $VENV was made with $("$VENV/bin/python" -V 2>&1), TACOS needs Python 3.11: rm -rf $VENV and re-run" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/python" ] && ! python_ok "$PYTHON"; then
  echo "error: TACOS needs Python 3.11; $PYTHON is $("$PYTHON" -V 2>&1 || echo missing). Install 3.11 (e.g." \
       "pyenv install 3.11) and run: PYTHON=/path/to/python3.11 bash scripts/install.sh" >&2
  exit 2
fi
case "$TORCH" in cpu|cuda) ;; *) echo "error: TORCH=$TORCH: use TORCH=cpu or TORCH=cuda" >&2; exit 2 ;; esac
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# --no-compile: no .pyc for ~190 packages up front (~400 MB, a good part of the install's CPU time); Python writes
# them on first import, for the modules a run uses.
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check --no-compile)

# torch first, pinned by scripts/torch-$TORCH.txt in every pip call below, so no extra can move it (a plain `torch`
# requirement would pull PyPI's multi-GB CUDA build). On CPU, PyPI's x86_64 torchvision/torchaudio are CUDA builds
# that cannot load beside CPU torch and text SFT does not use them: stand-ins satisfy LLaMA-Factory's requirements
# (scripts/cpu_stand_ins.py says what they are).
FIND_LINKS=()
if [ "$TORCH" = cpu ]; then
  STAND_INS=$(mktemp -d)
  trap 'rm -rf "$STAND_INS"' EXIT
  "$VENV/bin/python" scripts/cpu_stand_ins.py "$STAND_INS"
  FIND_LINKS=(--find-links "$STAND_INS")
  if ! "${PIP[@]}" "${FIND_LINKS[@]}" -r scripts/torch-cpu.txt; then
    echo "error: torch 2.13.0+cpu was not found: add PyTorch's CPU index (PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu" \
         "bash scripts/install.sh), or use TORCH=cuda" >&2
    exit 2
  fi
else
  "${PIP[@]}" -r scripts/torch-cuda.txt
fi
# The embedded LLM server is llama.cpp's own (the prebuilt xllamacpp wheel): nothing compiles. The optional
# llama-cpp-python backend (llm=local_llama_cpp_python) ships only an sdist (~6 min compile on 2 cores): it is added
# only when a prebuilt wheel of it lies in ../shared/wheels (EXTRAS=...,llama-cpp-python asks for it anyway).
if [ -d ../shared/wheels ]; then
  FIND_LINKS+=(--find-links ../shared/wheels)
  if ls ../shared/wheels/llama_cpp_python-*.whl >/dev/null 2>&1 && [[ ",$EXTRAS," != *",llama-cpp-python,"* ]]; then
    EXTRAS="$EXTRAS,llama-cpp-python"
  fi
fi
# The distribution was called `tacos` before (taken on PyPI): drop an old editable install of it from this venv.
if "$VENV/bin/python" -m pip show -q tacos 2>/dev/null; then "$VENV/bin/python" -m pip uninstall -y -q tacos; fi
DS_BUILD_OPS=0 "${PIP[@]}" "${FIND_LINKS[@]}" -c scripts/constraints.txt -c "scripts/torch-$TORCH.txt" -e ".[${EXTRAS}]"
echo "TACOS installed in $VENV (torch: $TORCH, extras: $EXTRAS)"
