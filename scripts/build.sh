#!/usr/bin/env bash
# Configures and builds upcycle into ./build (Release, ccache) against the LibTorch of ./.venv's torch
# wheel. Extra arguments go to CMake, e.g. -DTorch_DIR=/opt/libtorch/share/cmake/Torch for a
# cluster's own LibTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=""
if [ -x .venv/bin/python ]; then PY="-DUPCYCLE_PYTHON=$PWD/.venv/bin/python"; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $PY "$@"
cmake --build build -j "$(nproc)"
