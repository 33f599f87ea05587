#!/usr/bin/env bash
# Trainer throughput: upcycle's C++ trainer against the Python peer (shared/bench/ref_train.py) on the
# same architecture, the same LibTorch (the .venv torch wheel) and the same threads, side by side in
# one run. Prints a Markdown table for docs/benchmarks.md.
#   bash scripts/bench_trainer.sh [THREADS...]      (default: 1 2)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
REF=../shared/bench/ref_train.py
RECIPE=recipes/ci/bench_trainer.yaml
threads_list=("${@:-1}")
if [ $# -eq 0 ]; then threads_list=(1 2); fi

echo "| threads | upcycle tok/s | ref_train.py tok/s | ratio |"
echo "|---|---|---|---|"
for t in "${threads_list[@]}"; do
  # --force: re-measure even when the job's key is already complete.
  build/bin/upcycle run "$RECIPE" "threads=$t" --force dense -j 1 > /dev/null 2>&1
  # The dense stage's final throughput in the most recent run of this recipe.
  ours=$(sqlite3 runs/bench/store.sqlite \
    "SELECT CAST(m.value AS INTEGER) FROM metrics m JOIN run_jobs rj ON rj.job_id = m.job_id
     JOIN runs r ON r.id = rj.run_id WHERE r.name = 'bench_trainer' AND rj.stage = 'dense'
     AND m.key = 'tokens_per_s' ORDER BY r.updated_at DESC, m.step DESC LIMIT 1")
  ref=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t MKL_NUM_THREADS=$t "$PY" "$REF" --vocab 512 --d 256 \
        --layers 4 --heads 4 --seq 256 --batch 16 --block parallel --steps 20 --threads "$t" \
        | sed -n 's/.*tokens_per_s=\([0-9]*\).*/\1/p')
  ratio=$(awk -v a="$ours" -v b="$ref" 'BEGIN { printf "%.2f", a / b }')
  echo "| $t | $ours | $ref | $ratio |"
done
