#!/usr/bin/env bash
# The clang-tidy check CI runs (the `lint` label): .clang-tidy's checks over every translation unit of
# the torch-free libraries (core, tracking, cluster, analysis, runner, stages/{arch,data,command,spec}),
# with warnings as errors. The LibTorch folders are left out: parsing torch.h costs minutes per file on
# CI's two cores. Usage: scripts/check_tidy.sh [BUILD_DIR] (its compile_commands.json).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
regex="$PWD/(core|tracking|cluster|analysis|runner|stages/arch|stages/data|stages/command|stages/spec)/[^/]+(/[^/]+)?\.cpp$"
run-clang-tidy -p "$BUILD" -j "$(nproc)" -quiet -header-filter "$PWD/(core|tracking|cluster|stages|analysis|runner)/" "$regex" > "$BUILD/tidy.log" 2>&1 || {
  grep -E "(warning|error):" "$BUILD/tidy.log" | sort -u
  echo "check_tidy: failed (full output in $BUILD/tidy.log)"
  exit 1
}
echo "check_tidy: $(grep -c '^clang-tidy' "$BUILD/tidy.log" || true) translation units clean"
