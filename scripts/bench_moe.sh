#!/usr/bin/env bash
# MoE step-time overhead: forward+backward time per token of 4-expert top-1 and top-2 MoE models
# against the dense model, compared with the analytic active-FLOP ratio (`upcycle flops`), and the
# MoE layer against the Mixtral-style dispatch of shared/bench/ref_train.py, side by side in one run.
#   bash scripts/bench_moe.sh [THREADS]      (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-1}"
PY=.venv/bin/python
REF=../shared/bench/ref_train.py
RECIPE=recipes/ci/bench_trainer.yaml
STORE=runs/bench/store.sqlite

build/bin/upcycle run "$RECIPE" "threads=$t" --force dense -j 1 > /dev/null 2>&1
tps() {
  # The stage's final throughput in the most recent run of this recipe.
  sqlite3 "$STORE" "SELECT CAST(m.value AS INTEGER) FROM metrics m JOIN run_jobs rj ON rj.job_id = m.job_id
                    JOIN runs r ON r.id = rj.run_id WHERE r.name = 'bench_trainer' AND rj.stage = '$1'
                    AND m.key = 'tokens_per_s' ORDER BY r.updated_at DESC, m.step DESC LIMIT 1"
}
flops() {
  build/bin/upcycle flops "$RECIPE" --stage "$1" --format json \
    | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[0]["forward"])'
}
ref() {
  OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$PY" "$REF" --vocab 512 --d 256 --layers 4 --heads 4 \
    --seq 256 --batch 16 --block parallel --steps 20 --threads "$t" "$@" \
    | sed -n 's/.*tokens_per_s=\([0-9]*\).*/\1/p'
}
dense_tps=$(tps dense)
dense_flops=$(flops dense)
ref_dense=$(ref)
echo "| model | upcycle tok/s | time/token vs dense | active-FLOP ratio | measured / analytic | ref_train.py tok/s | upcycle / ref |"
echo "|---|---|---|---|---|---|---|"
printf "| dense | %s | 1.00 | 1.00 | 1.00 | %s | %.2f |\n" "$dense_tps" "$ref_dense" \
  "$(awk -v a="$dense_tps" -v b="$ref_dense" 'BEGIN { print a / b }')"
for k in 1 2; do
  stage="moe4_top${k}_train"
  ours=$(tps "$stage")
  theirs=$(ref --experts 4 --topk "$k")
  awk -v name="4 experts, top-$k" -v ours="$ours" -v dense="$dense_tps" -v f="$(flops "$stage")" \
      -v fd="$dense_flops" -v ref="$theirs" 'BEGIN {
    time_ratio = dense / ours; flop_ratio = f / fd
    printf "| %s | %d | %.2f | %.2f | %.2f | %d | %.2f |\n", name, ours, time_ratio, flop_ratio,
           time_ratio / flop_ratio, ref, ours / ref }'
done
