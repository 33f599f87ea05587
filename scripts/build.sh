#!/usr/bin/env bash
# Configures and builds upcycle into ./build (Release, ccache) against the LibTorch of ./.venv's torch
# wheel. Extra arguments go to CMake, e.g. -DTorch_DIR=/opt/libtorch/share/cmake/Torch for a
# cluster's own LibTorch (add -DUPCYCLE_REQUIRE_CUDA=OFF when it is CPU-only).
# Then, where clang and its libFuzzer runtime are installed (scripts/setup.sh installs them), the
# libFuzzer harnesses into ./build/fuzz (tests/fuzz/; torch-free, ASan + UBSan); the fuzz-labelled
# tests run them.
set -euo pipefail
cd "$(dirname "$0")/.."
# Against ./.venv's wheel (a CUDA build: scripts/setup.sh installs PyPI's default torch), CUDA and
# NCCL are required, so a build that loses them fails here rather than on a GPU node; a CPU-only
# LibTorch passed as -DTorch_DIR builds with -DUPCYCLE_REQUIRE_CUDA=OFF.
PY=""
if [ -x .venv/bin/python ]; then PY="-DUPCYCLE_PYTHON=$PWD/.venv/bin/python -DUPCYCLE_REQUIRE_CUDA=ON"; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $PY "$@"
cmake --build build -j "$(nproc)"

if command -v clang++ >/dev/null && [ -f "$(clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a)" ]; then
  cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DUPCYCLE_FUZZ=ON >/dev/null
  cmake --build build/fuzz -j "$(nproc)"
else
  echo "[build] clang's libFuzzer is not installed: no fuzzers (scripts/setup.sh installs clang and libclang-rt-dev)"
fi
