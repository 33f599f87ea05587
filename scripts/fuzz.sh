#!/usr/bin/env bash
# Runs the libFuzzer harnesses (tests/fuzz/, built by scripts/build.sh into build/fuzz).
#   scripts/fuzz.sh [--time SECONDS] [recipe|query|spec|hf_config|result|tokenizer ...]   default: 600 s each, all six
#   scripts/fuzz.sh --runs N --seed S NAME                          N inputs from a fresh corpus with a fixed
#       seed: the same executions on every machine (what the fuzz-labelled tests run, so CI does not
#       depend on luck; exploration is the timed mode's job)
# UPCYCLE_FUZZ_DIR (default build/fuzz) is the fuzz build.
# Each starts from its seed corpus (recipes/ and tests/fuzz/seeds/NAME) plus what earlier runs kept in
# build/fuzz/corpus/NAME. A crash, sanitizer report, leak, an input running past 20 s or 2 GiB is a
# finding: its input is saved under build/fuzz/findings/NAME/ and the script exits 1. Replay one with
#   build/fuzz/bin/fuzz_NAME build/fuzz/findings/NAME/crash-...
# and add it to the bad-input tests once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_dir="${UPCYCLE_FUZZ_DIR:-build/fuzz}"
seconds=600
runs=""
seed=""
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    recipe|query|spec|hf_config|result|tokenizer) names+=("$1"); shift ;;
    *) echo "fuzz.sh: unknown argument '$1' (usage: fuzz.sh [--time SECONDS] [recipe|query|spec|hf_config|result|tokenizer ...])" >&2; exit 1 ;;
  esac
done
[ ${#names[@]} -gt 0 ] || names=(recipe query spec hf_config result tokenizer)

status=0
for name in "${names[@]}"; do
  bin="$fuzz_dir/bin/fuzz_$name"
  if [ ! -x "$bin" ]; then
    echo "fuzz.sh: $bin is not built (scripts/setup.sh installs clang and libclang-rt-dev; scripts/build.sh builds it)" >&2
    exit 1
  fi
  corpus="$fuzz_dir/corpus/$name"
  limit=(-max_total_time="$seconds")
  if [ -n "$runs" ]; then  # reproducible: a fresh corpus, a fixed seed, a fixed number of inputs
    corpus="$(mktemp -d)"
    trap 'rm -rf "$corpus"' EXIT
    limit=(-runs="$runs" -seed="${seed:-1}")
  fi
  findings="$fuzz_dir/findings/$name"
  mkdir -p "$corpus" "$findings"
  seeds=("tests/fuzz/seeds/$name")
  if [ "$name" = recipe ]; then
    mkdir -p "$fuzz_dir/seeds-recipes"
    find recipes -name '*.yaml' | while read -r f; do cp "$f" "$fuzz_dir/seeds-recipes/${f//\//_}"; done
    seeds+=("$fuzz_dir/seeds-recipes")
  fi
  echo "[fuzz] $name: ${limit[*]}"
  log="$fuzz_dir/$name.log"
  if "$bin" "$corpus" "${seeds[@]}" "${limit[@]}" -timeout=20 -rss_limit_mb=2048 -max_len=16384 \
       -artifact_prefix="$findings/" -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -1
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$log"
  else
    status=1
    tail -60 "$log"
    echo "[fuzz] $name: FINDING, input saved in $findings/ (log: $log)"
  fi
done
exit $status
