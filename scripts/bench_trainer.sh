#!/usr/bin/env bash
# Trainer throughput: `upcycle bench train` (the real C++ trainer on synthetic tokens) against the
# Python peer (shared/bench/ref_train.py) on the same model config, the same LibTorch (the .venv torch
# wheel) and the same threads, side by side in one run: the two alternate REPS times per row and the
# table gives the medians. Prints a Markdown table for docs/benchmarks.md.
#   bash scripts/bench_trainer.sh [REPS]      (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
REF=../shared/bench/ref_train.py
REPS=${1:-3}
COMMON=(--vocab 512 --d 256 --layers 4 --heads 4 --seq 256 --batch 16 --block parallel --steps 20)

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
tps() { sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p' | tail -1; }

echo "| model | threads | upcycle tok/s | ref_train.py tok/s | ratio |"
echo "|---|---|---|---|---|"
for model in dense moe; do
  extra=()
  if [ "$model" = moe ]; then extra=(--experts 4 --topk 2); fi
  for t in 1 2; do
    ours=() ref=()
    for ((i = 0; i < REPS; i++)); do
      export OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t MKL_NUM_THREADS=$t
      ref+=("$("$PY" "$REF" "${COMMON[@]}" "${extra[@]}" --threads "$t" | tps)")
      ours+=("$(build/bin/upcycle bench train "${COMMON[@]}" "${extra[@]}" --threads "$t" | tps)")
    done
    o=$(printf '%s\n' "${ours[@]}" | median)
    r=$(printf '%s\n' "${ref[@]}" | median)
    label=$model; if [ "$model" = moe ]; then label="MoE 4 experts, top-2"; fi
    echo "| $label | $t | $o | $r | $(awk -v a="$o" -v b="$r" 'BEGIN { printf "%.2f", a / b }') |"
  done
done
