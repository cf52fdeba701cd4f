#!/usr/bin/env bash
# Optional: build llama.cpp's `llama-server` for THIS CPU (-march=native) and print the override that uses it.
#
#   bash scripts/build_llama_server.sh [DEST]      # DEST default: ~/.cache/tacos/llama-server-native
#   python run.py llm.server_binary=DEST/llama-server
#
# Why: the default `llm=local` runs llama.cpp's server from the xllamacpp wheel, an AVX2 build. On a CPU with
# AVX-512 a native build is faster (here 1.2x on tagging, 1.5x on log-prob judgments; README "Figures"). The
# sources are the llama.cpp release vendored in llama-cpp-python's sdist on PyPI (MIT), so this works wherever pip
# does. Needs cmake and a C++17 compiler; a few minutes on 2 cores (only the server target is built).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-${TACOS_MODEL_CACHE:-$HOME/.cache/tacos}/llama-server-native}
VERSION=0.3.36   # llama-cpp-python release whose vendored llama.cpp is built
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
for tool in cmake c++; do
  command -v "$tool" >/dev/null || { echo "build_llama_server: '$tool' is not installed" >&2; exit 2; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download --disable-pip-version-check --no-deps --no-binary :all: -d "$work" \
  "llama-cpp-python==$VERSION" >/dev/null
tar xzf "$work/llama_cpp_python-$VERSION.tar.gz" -C "$work"
src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$src" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF >"$work/cmake.log" \
  || { tail -20 "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/build" --target llama-server -j "$(nproc)" >"$work/build.log" \
  || { tail -30 "$work/build.log" >&2; exit 1; }
mkdir -p "$DEST"
# the server and the shared libraries it loads from its own folder (tacos sets LD_LIBRARY_PATH to it)
cp -a "$work/build/bin/llama-server" "$work"/build/bin/lib*.so* "$DEST"/
"$DEST/llama-server" --version 2>&1 | grep -m1 '^version' || true
echo "built: $DEST/llama-server"
echo "use:   python run.py llm.server_binary=$DEST/llama-server"
