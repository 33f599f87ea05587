#!/usr/bin/env bash
# Configures and builds upcycle into ./build (Release, ccache) against the LibTorch of ./.venv's torch
# wheel. Extra arguments go to CMake, e.g. -DTorch_DIR=/opt/libtorch/share/cmake/Torch for a
# cluster's own LibTorch.
# Then, where clang and its libFuzzer runtime are installed (scripts/setup.sh installs them), the
# libFuzzer harnesses into ./build/fuzz (tests/fuzz/; torch-free, ASan + UBSan); the fuzz-labelled
# tests run them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=""
if [ -x .venv/bin/python ]; then PY="-DUPCYCLE_PYTHON=$PWD/.venv/bin/python"; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $PY "$@"
cmake --build build -j "$(nproc)"

if command -v clang++ >/dev/null && [ -f "$(clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a)" ]; then
  cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DUPCYCLE_FUZZ=ON >/dev/null
  cmake --build build/fuzz -j "$(nproc)"
else
  echo "[build] clang's libFuzzer is not installed: no fuzzers (scripts/setup.sh installs clang and libclang-rt-dev)"
fi
