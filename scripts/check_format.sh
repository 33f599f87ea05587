#!/usr/bin/env bash
# The format check CI runs (the `lint` label): every tracked C++ file is as clang-format (the root's
# .clang-format, 100 columns) writes it. To fix: scripts/check_format.sh --fix.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.h')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
clang-format --dry-run -Werror "${files[@]}"
echo "check_format: ${#files[@]} files formatted"
